"""Text from data, models and servers, made safe to show on a terminal.

Such text is not trusted (README, "What is trusted"): a model's output, an example's
input or a server's error body may hold escape sequences that recolour, retitle or
clear the terminal, move the cursor over earlier lines, or ring the bell. Everything
the CLI prints from them goes through `terminal_text` (or `terminal_markup`, for text
inside a rich markup string): escape sequences are removed whole, then every other
control character except newline and tab. Rich markup is a separate matter: print
such text with markup off, as a rich Text, or through `terminal_markup`.
"""

from __future__ import annotations

import re

from rich.markup import escape

# ECMA-48: control strings (OSC, DCS, SOS, PM, APC) up to their terminator, CSI
# sequences, and two-character escapes; 7-bit (ESC x) and 8-bit (C1) introducers.
_ESCAPE_SEQUENCES = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_text(text: object) -> str:
    """`text` (str() of it) without escape sequences or control characters other than
    newline and tab ("\\r\\n" becomes "\\n"). Markup is left as it is."""
    s = str(text).replace("\r\n", "\n")
    return _CONTROL_CHARS.sub("", _ESCAPE_SEQUENCES.sub("", s))


def terminal_markup(text: object) -> str:
    """`terminal_text`, with rich markup escaped: for untrusted text placed inside a
    string printed with markup on."""
    return escape(terminal_text(text))
