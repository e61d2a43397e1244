"""Builds model backends from ModelSpecs; equal specs share one backend instance."""

from __future__ import annotations

import os
from pathlib import Path

from promptascent.errors import ConfigError
from promptascent.llm.base import LLM
from promptascent.llm.chat_template import ChatTemplate
from promptascent.llm.spec import ModelSpec, check_test_backend


class BackendFactory:
    def __init__(self) -> None:
        self._made: dict[tuple[object, ...], LLM] = {}

    def get(self, spec: ModelSpec, *, role: str) -> LLM:
        key = spec.identity()
        if key not in self._made:
            self._made[key] = _build(spec, role)
        return self._made[key]

    def close(self) -> None:
        for backend in self._made.values():
            backend.close()
        self._made.clear()


def _build(spec: ModelSpec, role: str) -> LLM:
    if spec.backend == "embedded":
        from promptascent.llm.embedded import EmbeddedLLM

        return EmbeddedLLM(spec.model, n_ctx=spec.context_length or 4096)
    if spec.backend == "openai":
        from promptascent.llm.http import OpenAICompatibleLLM

        if not spec.model:
            raise ConfigError(f"models.{role}.model: an openai backend needs a model name")
        return OpenAICompatibleLLM(
            spec.base_url or "https://api.openai.com/v1",
            spec.model,
            api_key_env=None if spec.api_key_file else spec.api_key_env,
            api_key=_read_key_file(spec.api_key_file, role) if spec.api_key_file else None,
            key_setting=f"models.{role}.api_key_env",
            timeout=spec.timeout,
            max_concurrency=spec.max_concurrency,
            context_length=spec.context_length or 8192,
            tokenizer=spec.tokenizer,
            max_response_bytes=spec.max_response_bytes,
            loglik=spec.loglik,
            chat_template=ChatTemplate.load(spec.chat_template) if spec.loglik == "echo" else None,
        )
    if spec.backend == "litellm":
        from promptascent.llm.litellm_backend import LiteLLMBackend

        named = spec.api_key_env and os.environ.get(spec.api_key_env)
        return LiteLLMBackend(
            spec.model or "",
            setting=f"models.{role}",
            base_url=spec.base_url,
            api_key=_read_key_file(spec.api_key_file, role) if spec.api_key_file else named,
            timeout=spec.timeout,
            max_concurrency=spec.max_concurrency,
            context_length=spec.context_length,
        )
    return _scripted(spec, role)


def _scripted(spec: ModelSpec, role: str) -> LLM:
    """`backend: scripted, model: "module:function"`: a deterministic responder, for
    tests that drive the CLI (e.g. the kill-and-resume harness). Refused outside tests
    (PROMPTASCENT_TEST_BACKENDS=1), checked here too since this is where it imports."""
    import importlib

    from promptascent.llm.scripted import ScriptedLLM

    try:
        check_test_backend(spec.backend)
    except ValueError as e:
        raise ConfigError(f"models.{role}.backend: {e}") from None

    module, _, name = (spec.model or "").partition(":")
    if not module or not name:
        raise ConfigError(f"models.{role}.model: a scripted model is 'module:function'")
    try:
        responder = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"models.{role}.model: cannot load {spec.model!r} ({e})") from None
    return ScriptedLLM(responder, model_id=f"scripted:{spec.model}")


def _read_key_file(path: Path, role: str) -> str:
    """The key from a file the user names; errors name the file, never its content."""
    try:
        key = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(
            f"models.{role}.api_key_file: cannot read {path} ({e.strerror})"
        ) from None
    if not key:
        raise ConfigError(f"models.{role}.api_key_file: {path} is empty")
    return key
