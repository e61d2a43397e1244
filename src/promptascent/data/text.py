"""The text of data files, checked when it is loaded: before anything is spent, so
that --dry-run finds every problem.

Data is not trusted (README, "What is trusted"): a row may hold anything JSON can
say. Every string of a row (keys included) is checked:
- text that cannot be encoded as UTF-8 (a lone surrogate such as "\\ud800", which
  JSON accepts) is a DataError naming the file, the line and the field: no model
  request could carry it;
- C0 and C1 control characters (ESC, NUL, BEL, DEL, ...) other than tab, newline and
  carriage return are removed and counted: they are terminal commands, not text;
- a row holding more than `max_chars` characters of text in all (every string, keys
  included) is a DataError naming the setting that raises the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from promptascent.config.task import DEFAULT_MAX_EXAMPLE_CHARS
from promptascent.errors import DataError

CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass
class TextCheck:
    """Checks and cleans the rows of one file; `removed` counts the control
    characters taken out so far."""

    max_chars: int = DEFAULT_MAX_EXAMPLE_CHARS
    removed: int = 0

    def row(self, row: Any, where: str) -> Any:
        """The row with its strings cleaned (same shape); DataError prefixed with
        `where` for text that cannot be encoded or a row over the size limit."""
        chars = [0]
        cleaned = self._value(row, where, None, chars)
        if chars[0] > self.max_chars:
            raise DataError(
                f"{where}: the example holds {chars[0]:,} characters of text, more than "
                f"{self.max_chars:,} (data.max_example_chars in the task file)"
            )
        return cleaned

    def text(self, value: str, where: str, field: str | None = None) -> str:
        """One string cleaned (no size limit: for a task's description or prompt)."""
        return self._text(value, where, field)

    def _value(self, value: Any, where: str, field: str | None, chars: list[int]) -> Any:
        if isinstance(value, str):
            cleaned = self._text(value, where, field)
            chars[0] += len(cleaned)
            return cleaned
        if isinstance(value, list):
            return [self._value(v, where, field, chars) for v in value]
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                key = self._value(k, where, field, chars) if isinstance(k, str) else k
                out[key] = self._value(v, where, field or str(key), chars)
            return out
        return value

    def _text(self, value: str, where: str, field: str | None) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start]
            at = f" in {field!r}" if field else ""
            raise DataError(
                f"{where}: text{at} cannot be encoded as UTF-8 (a lone surrogate "
                f"\\u{ord(bad):04x} at character {exc.start + 1})"
            ) from None
        cleaned, n = CONTROL_CHARS.subn("", value)
        self.removed += n
        return cleaned

    def note(self, source: str) -> tuple[str, ...]:
        """The data note for what was removed from `source` (none when nothing was)."""
        if not self.removed:
            return ()
        s = "" if self.removed == 1 else "s"
        return (
            f"{source}: removed {self.removed} control character{s} (such as ESC or NUL; "
            "tabs and line breaks are kept)",
        )
