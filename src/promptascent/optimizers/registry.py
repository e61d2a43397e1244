"""Optimizers by name."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from promptascent.errors import ConfigError
from promptascent.optimizers.base import Optimizer

_REGISTRY: dict[str, type[Optimizer]] = {}


def register(cls: type[Optimizer]) -> type[Optimizer]:
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create(
    name: str, options: dict[str, Any] | None = None, *, where: str = "optimizer"
) -> Optimizer:
    """An optimizer by name with its typed options. Unknown names and options are
    ConfigErrors naming them."""
    _load_builtins()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"{where}: unknown optimizer {name!r}; known: {', '.join(names())}")
    try:
        config = cls.Config(**(options or {}))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, list(cls.Config.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown option {key!r} for {name}{hint}") from None
        raise ConfigError(f"{where}.{key}: {err['msg']} (optimizer {name})") from None
    return cls(config)


_NOT_OPTIMIZERS = {
    "base",
    "registry",
    "parsing",
    "screening",
    "options",
    "estimate",
    "kfold",
    "feedback",
}


def _load_builtins() -> None:
    """Imports every module of this package: each registers its optimizer(s)."""
    import importlib
    import pkgutil

    import promptascent.optimizers as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_OPTIMIZERS and not info.name.startswith("_"):
            importlib.import_module(f"promptascent.optimizers.{info.name}")
