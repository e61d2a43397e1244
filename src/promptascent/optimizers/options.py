"""The options optimizers share, declared once.

Every optimizer's options are one frozen pydantic model (unknown options are errors).
The options several methods have in common are declared here, with their constraints,
description and the common default; an optimizer's config inherits the blocks it uses:

- `SamplingOptions` (`temperature`, `max_tokens`): how the optimizer model is sampled,
  for every optimizer that asks it (all but `exemplars`);
- `SelectionOptions` (`final_k`): how many candidates reach the final selection on dev;
- `ScreeningOptions` (`eval_examples`, and `final_k`): the screen-then-select scaffold
  (optimizers/screening.py).

Where a method needs another default (its paper's, or a longer reply), its config says
so with `default(option, value, why)`: the constraints and description stay these, the
reason is appended to the description (and so shown wherever options are listed).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo


class OptimizerConfig(BaseModel):
    """Base of every optimizer's options. Unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingOptions(OptimizerConfig):
    """How the optimizer model is sampled for proposals."""

    temperature: float = Field(0.9, ge=0.0, le=2.0, description="Optimizer-model temperature.")
    max_tokens: int = Field(96, ge=8, description="Optimizer-model reply limit.")


class SelectionOptions(OptimizerConfig):
    """The size of the final selection on dev (Optimizer.select_final)."""

    final_k: int = Field(
        3, ge=1, description="Candidates scored on the whole dev split (the seed among them)."
    )


class ScreeningOptions(SelectionOptions):
    """The screen-then-select scaffold: every candidate is screened on the same
    `eval_examples` dev examples, then `final_k` finalists on the whole dev split."""

    eval_examples: int = Field(20, ge=1, description="Dev examples each candidate is scored on.")


_SHARED: dict[str, FieldInfo] = {
    **SamplingOptions.model_fields,
    **ScreeningOptions.model_fields,
}


def default(option: str, value: Any, why: str, *, description: str | None = None) -> Any:
    """The shared `option` with the default `value` for one optimizer, `why` appended
    to its description (or `description` replacing it, where the option means more
    there, e.g. which candidates `final_k` counts). Use as a field's default:
    `temperature: float = default("temperature", 0.5, "paper: 0.5")`."""
    shared = _SHARED[option]
    text = description or shared.description or ""
    return FieldInfo.merge_field_infos(shared, default=value, description=f"{text} ({why})")
