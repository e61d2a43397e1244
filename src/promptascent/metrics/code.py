"""Metrics written as code by the user: named only by the task file, imported only
when a run starts.

A task file (trusted: the user wrote it and passes it) may name a metric function in
one of two forms, the module always named explicitly:

- "./my_metrics.py:score": a .py file, relative to the task file's folder (or
  absolute), loaded by itself with importlib (its folder is not put on the import path);
- "package.module:score": an installed module, imported with the current folder
  removed from the import path, so a file lying in the folder a command is run from
  is never imported by accident.

`CodeMetric` checks the spec when it is made (the file exists; the module's top-level
package is installed) without running any of the user's code, so planning and
--dry-run run none; `load()` imports it, and the first `score()` does so when nobody
did before. Errors are ConfigError, one line, naming the spec and the file or module.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from promptascent.data.example import Example
from promptascent.errors import ConfigError
from promptascent.metrics.base import Score
from promptascent.metrics.builtin import CallableMetric

FORM = "'./file.py:function' or 'package.module:function'"


def is_code_spec(name: str) -> bool:
    """Whether a metric name names code ("module:function") rather than a built-in."""
    return ":" in name


class CodeMetric:
    """A metric function the task file names (see the module docstring). `name` is the
    spec as written. Thread-safe: concurrent first calls import the code once."""

    def __init__(self, spec: str, base_dir: Path = Path(".")) -> None:
        self.name: str = spec
        self.needs_target: bool = True  # the function's own, once it is imported
        source, sep, attr = spec.strip().rpartition(":")  # the last colon: "C:\m.py:f"
        source, attr = source.strip(), attr.strip()
        if not sep or not source or not _dotted(attr):
            raise ConfigError(f"metric {spec!r}: expected {FORM}")
        self._attr = attr
        self._file: Path | None = None
        self._module = source
        if _is_path(source):
            path = Path(source).expanduser()
            self._file = path if path.is_absolute() else base_dir / path
            if self._file.suffix != ".py":
                raise ConfigError(f"metric {spec!r}: {source} is not a .py file; expected {FORM}")
            if not self._file.is_file():
                raise ConfigError(f"metric {spec!r}: {self._file}: file not found")
        elif not _dotted(source):
            raise ConfigError(f"metric {spec!r}: expected {FORM}")
        else:
            _check_installed(spec, source)
        self._lock = threading.Lock()
        self._loaded: CallableMetric | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> CallableMetric:
        """Imports the code (once) and returns the function as a metric. ConfigError when
        the import fails or the attribute is missing or not callable."""
        with self._lock:
            if self._loaded is None:
                module = (
                    _import_file(self.name, self._file)
                    if self._file is not None
                    else _import_installed(self.name, self._module)
                )
                self._loaded = CallableMetric(self.name, _attribute(self.name, module, self._attr))
                self.needs_target = self._loaded.needs_target
            return self._loaded

    def score(self, output: str, example: Example) -> Score:
        return self.load().score(output, example)


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or "\\" in source


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _check_installed(spec: str, module: str) -> None:
    """The module's top-level package can be found (find_spec locates it and runs none
    of its code; a dotted name's parents would run, so only the top is looked up)."""
    top = module.split(".")[0]
    with _without_current_folder():
        found = top in sys.modules or importlib.util.find_spec(top) is not None
    if not found:
        raise ConfigError(f"metric {spec!r}: cannot import {module!r}: {_not_found_hint(module)}")


def _not_found_hint(module: str) -> str:
    return (
        f"no installed module {module.split('.')[0]!r} (a module in the current folder is "
        f"not imported: name its file, e.g. metric: ./{module.split('.')[-1]}.py:function)"
    )


@contextmanager
def _without_current_folder() -> Iterator[None]:
    """The import path without the current folder ('' or its path), restored after."""
    cwd = os.getcwd()
    saved = list(sys.path)
    sys.path[:] = [p for p in saved if p not in ("", ".") and os.path.abspath(p) != cwd]
    try:
        yield
    finally:
        added = [p for p in sys.path if p not in saved]
        sys.path[:] = saved + added


def _import_installed(spec: str, module: str) -> ModuleType:
    try:
        with _without_current_folder():
            return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module.split(".")[0]:
            raise ConfigError(
                f"metric {spec!r}: cannot import {module!r}: {_not_found_hint(module)}"
            ) from exc
        raise ConfigError(f"metric {spec!r}: cannot import {module!r}: {_one_line(exc)}") from exc
    except Exception as exc:
        raise ConfigError(f"metric {spec!r}: cannot import {module!r}: {_one_line(exc)}") from exc


def _import_file(spec: str, path: Path) -> ModuleType:
    """Loads a .py file as a module of its own (registered in sys.modules under a name
    made from its path, so that pickling and dataclasses in it work)."""
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    name = f"promptascent_user_metric_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"metric {spec!r}: {resolved}: cannot be loaded as a module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if not isinstance(exc, Exception):
            raise
        raise ConfigError(f"metric {spec!r}: {resolved}: {_one_line(exc)}") from exc
    return module


def _attribute(spec: str, module: ModuleType, attr: str) -> Any:
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            where = getattr(module, "__file__", None) or module.__name__
            raise ConfigError(f"metric {spec!r}: {where} has no {attr!r}") from exc
    if not callable(target):
        raise ConfigError(f"metric {spec!r}: {attr!r} is not callable")
    return target


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
