"""Human preference feedback (as in APOHF, Lin et al. 2024): a person compares the
outputs of two candidate prompts on one input, a dueling-bandit rule picks the next
pair, and a Bradley-Terry model turns the verdicts into a ranking.

`duel` holds the values, `bandit` the pair rule and the strengths, `loop` the engine
(driven by any `Chooser` callback), `candidates` where the candidates come from and
`session` the wiring into a recorded run (`promptascent.prefer`).
"""

from promptascent.preference.duel import CHOICES, Choice, Duel, Record
from promptascent.preference.loop import Chooser, PreferenceOutcome, Standing, run_preferences

__all__ = [
    "CHOICES",
    "Choice",
    "Chooser",
    "Duel",
    "PreferenceOutcome",
    "Record",
    "Standing",
    "run_preferences",
]
