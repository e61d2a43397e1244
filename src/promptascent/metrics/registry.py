"""Metric lookup by name, options dict or code spec ("./file.py:function",
"package.module:function"; see metrics/code.py)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
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
from promptascent.metrics.code import CodeMetric, is_code_spec
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


def get_metric(spec: str | Mapping[str, Any], *, code_dir: Path | None = None) -> Metric:
    """The metric a spec names.

    `spec` is a built-in name ("exact_match", "contains", "choice_accuracy", "token_f1",
    "numeric", "judge"), a mapping with "name" and that metric's options ({"name": "regex",
    "pattern": "..."}, {"name": "numeric", "tolerance": 0.01}, {"name": "judge", "rubric":
    "...", "votes": 3}: an LLM judge, unbound until the runner gives it the judge model),
    or code: "./file.py:function" or "package.module:function" (a CodeMetric, checked
    but not imported: see metrics/code.py).

    Code is trusted only from a task file: `code_dir` is the folder of the task file the
    spec comes from (a relative .py path is read from there). Without it (a spec from a
    data folder's task.json) a code spec is refused. Raises ConfigError for an unknown
    name (listing the known ones), an unknown, missing or invalid option (naming it), a
    malformed spec, or code where code is not allowed.
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
    if is_code_spec(name):
        if code_dir is None:
            raise ConfigError(
                f"metric {name!r}: code is named only in the task file you pass "
                "(data names built-in metrics only)"
            )
        if options:
            raise ConfigError(f"metric {name}: unknown option {sorted(options)[0]!r}")
        return CodeMetric(name, code_dir)
    if name not in _BUILTINS:
        known = ", ".join(KNOWN_METRICS)
        close = difflib.get_close_matches(name, KNOWN_METRICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"metric: unknown metric {name!r}{hint}; known: {known} "
            "(or ./file.py:function, package.module:function)"
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


def load_metric(spec: str, *, code_dir: Path = Path(".")) -> CallableMetric:
    """Imports a code spec at once (see CodeMetric) and returns the function as a metric.

    ConfigError naming the spec when it is malformed, the file or module cannot be
    imported, or the attribute is missing or not callable.
    """
    return CodeMetric(spec, code_dir).load()
