"""What a model's tokens cost: the task file's `prices`, else LiteLLM's model table.

A model whose spec gives `prices` is priced by them. A litellm model without them is
priced by the table LiteLLM ships (read locally, never fetched: llm/litellm_backend.py)
where it knows the model; any other model is priced at nothing, and `--dry-run` says
it has no dollar estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptascent.errors import ConfigError
from promptascent.llm.spec import ModelSpec
from promptascent.llm.usage import Prices

TASK_FILE = "task file"
LITELLM_TABLE = "litellm table"
NONE_GIVEN = "none given"


@dataclass(frozen=True)
class PriceQuote:
    """A model's prices and where they came from: TASK_FILE, LITELLM_TABLE or
    NONE_GIVEN (priced at nothing: no dollar estimate)."""

    prices: Prices
    source: str
    note: str = ""  # why none were found, when it says more than "none given"

    @property
    def known(self) -> bool:
        return self.source != NONE_GIVEN

    def describe(self) -> str:
        """One phrase for --dry-run: the source and the dollars per million tokens."""
        if not self.known:
            return f"{NONE_GIVEN}{self.note} (no dollar estimate)"
        p = self.prices
        return f"{self.source} (${p.input:g} in, ${p.output:g} out per million tokens)"


def model_prices(spec: ModelSpec) -> PriceQuote:
    """The prices of the model `spec` names (see the module docstring)."""
    if spec.prices is not None:
        return PriceQuote(Prices(spec.prices.input, spec.prices.output), TASK_FILE)
    if spec.backend == "litellm" and spec.model:
        found = litellm_table_prices(spec.model)
        if found is not None:
            return PriceQuote(found, LITELLM_TABLE)
        return PriceQuote(Prices(), NONE_GIVEN, ", and LiteLLM's table does not know the model")
    return PriceQuote(Prices(), NONE_GIVEN)


def litellm_table_prices(model: str) -> Prices | None:
    """Dollars per million tokens for `model` in LiteLLM's local table, or None when
    the table does not know it (or LiteLLM is not installed)."""
    from promptascent.llm.litellm_backend import load_litellm

    try:
        litellm = load_litellm()
    except ConfigError:
        return None
    try:
        info = litellm.get_model_info(model)
    except Exception:  # LiteLLM raises for a model it does not know
        return None
    per_input, per_output = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not isinstance(per_input, int | float) or not isinstance(per_output, int | float):
        return None
    # per token to per million, rounded off the float noise (1.5e-07 -> 0.15)
    return Prices(round(per_input * 1e6, 9), round(per_output * 1e6, 9))
