"""From a task description to an optimized prompt: intent analysis (`intent`),
synthetic data (`synth`), strategy selection (`strategy`), and the pipeline that
joins them to a normal run (`pipeline`). See docs/describe.md."""

from promptascent.describe.intent import TaskDraft, analyse_intent, labels_from_description
from promptascent.describe.pipeline import (
    DescribedTaskSpec,
    Prepared,
    SynthOutcome,
    prepare_described,
    read_described_task,
    synth_task,
)
from promptascent.describe.strategy import StrategyChoice, choose_optimizer
from promptascent.describe.synth import SynthResult, near_duplicate, synthesize

__all__ = [
    "DescribedTaskSpec",
    "Prepared",
    "StrategyChoice",
    "SynthOutcome",
    "SynthResult",
    "TaskDraft",
    "analyse_intent",
    "choose_optimizer",
    "labels_from_description",
    "near_duplicate",
    "prepare_described",
    "read_described_task",
    "synth_task",
    "synthesize",
]
