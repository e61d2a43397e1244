"""The cost-aware objective: score minus a length penalty (`length_penalty`, as in
CAPO and Promptomatix), so that of two prompts scoring the same the shorter wins."""

from __future__ import annotations

import threading
from collections.abc import Callable

from promptascent.llm.client import ModelClient
from promptascent.llm.types import CompletionRequest
from promptascent.prompts.prompt import Prompt


def prompt_tokens(model: ModelClient, prompt: Prompt) -> int:
    """Tokens of the prompt without an input (system text, demos, instruction), by
    `model`'s tokenizer: exact for the embedded model, a byte upper bound over HTTP."""
    fields = {f: "" for f in prompt.fields or ("input",)}
    return model.prompt_tokens(CompletionRequest(messages=prompt.render(fields)))


class LengthPenalty:
    """penalty(prompt) = weight * tokens(prompt) / tokens(reference): with weight 0.05,
    a prompt as long as the seed pays 0.05 of score, one twice as long 0.10."""

    def __init__(self, weight: float, count: Callable[[Prompt], int], reference: Prompt) -> None:
        self.weight = weight
        self._count = count
        self._tokens: dict[str, int] = {}
        self._lock = threading.Lock()
        self._reference = max(1, self.tokens(reference))

    def tokens(self, prompt: Prompt) -> int:
        with self._lock:
            known = self._tokens.get(prompt.id)
        if known is None:
            known = self._count(prompt)
            with self._lock:
                self._tokens[prompt.id] = known
        return known

    def __call__(self, prompt: Prompt) -> float:
        return self.weight * self.tokens(prompt) / self._reference
