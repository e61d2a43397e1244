"""The candidates a person compares: the best of an earlier run, or the seed prompt
and paraphrases of it by the optimizer model (the random baseline's paraphrase
meta-prompt, read by the shared tolerant parser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptascent.errors import BudgetExhausted, ConfigError, ModelError
from promptascent.llm.client import ModelClient
from promptascent.llm.types import CompletionRequest, Message
from promptascent.optimizers.base import load_template
from promptascent.optimizers.parsing import parse_instruction
from promptascent.prompts.constraints import Constraints
from promptascent.prompts.prompt import Prompt
from promptascent.prompts.template import fill
from promptascent.search.pool import Candidate
from promptascent.search.splits import DEV, SUBSET
from promptascent.store.run_store import RunStore

PARAPHRASE_TEMPLATE = "random_paraphrase.txt"


@dataclass(frozen=True)
class Proposals:
    """Candidates (the seed first) and why other optimizer replies were not used."""

    candidates: tuple[Candidate, ...]
    rejected: tuple[str, ...] = ()
    stopped_by: str | None = None  # a budget limit that ended the proposals early


def from_run(store: RunStore, count: int) -> list[Candidate]:
    """The `count` best candidates of a recorded run by their selection score (the
    split its result names; without a result, "dev", else "dev-subset"), best first;
    candidates never scored there follow in the order they were made. Each keeps its
    lineage; the note says where it came from."""
    rows = store.candidates()
    if not rows:
        raise ConfigError(f"{store.run_dir}: the run recorded no candidates")
    result = store.get("result")
    if result and result.get("selection_split"):
        split = result["selection_split"]
    else:
        split = DEV if any(DEV in r["scores"] for r in rows) else SUBSET

    def mean(row: dict[str, Any]) -> float | None:
        s = row["scores"].get(split)
        return None if s is None else s["mean"]

    scored = sorted((r for r in rows if mean(r) is not None), key=lambda r: -(mean(r) or 0.0))
    ranked = scored + [r for r in rows if mean(r) is None]
    out = []
    for row in ranked[:count]:
        score = mean(row)
        where = f"{split} {score:.3f}" if score is not None else f"not scored on {split}"
        out.append(
            Candidate(
                Prompt.from_dict(row["prompt"]),
                tuple(row["parents"]),
                row["operation"],
                row["step"],
                note=f"from run {store.run_dir.name} ({where})",
            )
        )
    return out


def paraphrases(
    seed_prompt: Prompt,
    optimizer_model: ModelClient,
    count: int,
    *,
    seed: int,
    constraints: Constraints | None = None,
    temperature: float = 1.0,
    max_tokens: int = 96,
    attempts: int | None = None,
) -> Proposals:
    """The seed prompt and up to `count - 1` paraphrases of it, asking the optimizer
    model at most `attempts` times (default 3 per wanted paraphrase). Unusable replies
    (empty, unparseable, a repeat of the seed or of another candidate, against the
    constraints) and failed calls are skipped and reported. Running out of budget ends
    the proposals with what there is; ModelUnavailable propagates."""
    template = fill(load_template(PARAPHRASE_TEMPLATE), {"instruction": seed_prompt.instruction})
    constraints = constraints or Constraints()
    out = [Candidate(seed_prompt, operation="seed")]
    rejected: list[str] = []
    stopped_by = None
    for i in range(attempts if attempts is not None else 3 * max(0, count - 1)):
        if len(out) >= count:
            break
        request = CompletionRequest(
            messages=(Message("user", template),),
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            sample_index=i,
        )
        try:
            reply = optimizer_model.complete(request).text
        except BudgetExhausted as e:
            stopped_by = e.limit
            break
        except ModelError as e:
            rejected.append(f"model error: {e}")
            continue
        parsed = parse_instruction(reply, forbidden=(seed_prompt.instruction,))
        if parsed.text is None:
            rejected.append(parsed.reason)
            continue
        verdict = constraints.apply(seed_prompt.with_instruction(parsed.text))
        if verdict.prompt is None:
            rejected.append(f"constraint: {verdict.reason}")
            continue
        if any(c.id == verdict.prompt.id for c in out):
            rejected.append("duplicate of an earlier candidate")
            continue
        out.append(Candidate(verdict.prompt, (seed_prompt.id,), "paraphrase", 1))
    return Proposals(tuple(out), tuple(rejected), stopped_by)
