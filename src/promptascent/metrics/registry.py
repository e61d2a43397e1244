"""Metric lookup by name, options dict or "module:function" spec."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from promptascent.errors import ConfigError
from promptascent.metrics.base import Metric
from promptascent.metrics.builtin import (
    CallableMetric,
    ChoiceAccuracy,
    Contains,
    ExactMatch,
    Numeric,
    RegexMatch,
    TokenF1,
)
from promptascent.metrics.judge import RubricJudge

# name -> (factory, option keys it accepts, option keys it requires)
_BUILTINS: dict[str, tuple[Callable[..., Metric], frozenset[str], frozenset[str]]] = {
    "exact_match": (ExactMatch, frozenset(), frozenset()),
    "contains": (Contains, frozenset(), frozenset()),
    "choice_accuracy": (ChoiceAccuracy, frozenset(), frozenset()),
    "token_f1": (TokenF1, frozenset(), frozenset()),
    "numeric": (Numeric, frozenset({"tolerance"}), frozenset()),
    "regex": (RegexMatch, frozenset({"pattern"}), frozenset({"pattern"})),
    "judge": (
        RubricJudge,
        frozenset({"rubric", "low", "high", "votes", "temperature", "max_tokens"}),
        frozenset(),
    ),
}

KNOWN_METRICS: tuple[str, ...] = tuple(sorted(_BUILTINS))


def get_metric(spec: str | Mapping[str, Any]) -> Metric:
    """The metric a spec names.

    `spec` is a built-in name ("exact_match", "contains", "choice_accuracy", "token_f1",
    "numeric", "judge"), a mapping with "name" and that metric's options ({"name": "regex",
    "pattern": "..."}, {"name": "numeric", "tolerance": 0.01}, {"name": "judge", "rubric":
    "...", "votes": 3}: an LLM judge, unbound until the runner gives it the judge model),
    or "module:function"
    (see load_metric). Raises ConfigError for an unknown name (listing the known ones),
    an unknown, missing or invalid option (naming it), or a malformed spec.
    """
    if isinstance(spec, str):
        name, options = spec.strip(), {}
    elif isinstance(spec, Mapping):
        raw = spec.get("name")
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"metric spec {dict(spec)!r} needs a 'name' string")
        name, options = raw.strip(), {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ConfigError(f"metric spec must be a name or a mapping, got {spec!r}")
    if ":" in name:
        if options:
            raise ConfigError(f"metric {name}: unknown option {sorted(options)[0]!r}")
        return load_metric(name)
    if name not in _BUILTINS:
        known = ", ".join(KNOWN_METRICS)
        close = difflib.get_close_matches(name, KNOWN_METRICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"metric: unknown metric {name!r}{hint}; known: {known} (or module:function)"
        )
    factory, allowed, required = _BUILTINS[name]
    for key in options:
        if key not in allowed:
            accepts = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"metric {name}: unknown option {key!r} (accepts: {accepts})")
    for key in sorted(required):
        if key not in options:
            raise ConfigError(f"metric {name}: missing option {key!r}")
    return factory(**options)


def load_metric(spec: str) -> CallableMetric:
    """Imports "module:function" and wraps the function as a metric (see CallableMetric).

    ConfigError naming the spec when it is malformed, the module cannot be imported, or
    the attribute is missing or not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ConfigError(f"metric {spec!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name.strip())
    except Exception as exc:
        raise ConfigError(
            f"metric {spec!r}: cannot import {module_name.strip()!r}: {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attr.strip().split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(f"metric {spec!r}: {module_name.strip()!r} has no {attr!r}") from exc
    if not callable(target):
        raise ConfigError(f"metric {spec!r}: {attr!r} is not callable")
    return CallableMetric(spec, target)
