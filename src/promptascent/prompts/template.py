"""Instruction templates: `{field}` placeholders filled from an example, nothing else.

Only bare names are allowed (`{input}`, `{question}`): no attribute access, indexing
or format specs, so data can never reach code through a template. `{{` and `}}` are
literal braces.
"""

from __future__ import annotations

import re
import string

from promptascent.errors import TemplateError

_FORMATTER = string.Formatter()
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def template_fields(template: str) -> tuple[str, ...]:
    """The placeholder names of a template, in order of first use."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as e:
        raise TemplateError(f"malformed template ({e}): {template[:80]!r}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _NAME.match(name) or spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise TemplateError(
                f"template placeholder {{{written}}} is not a plain field name "
                f"(use {{{{ and }}}} for literal braces): {template[:80]!r}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def fill(template: str, fields: dict[str, str], *, where: str = "") -> str:
    """Fills a template. A placeholder with no field raises TemplateError naming it."""
    names = template_fields(template)
    missing = [n for n in names if n not in fields]
    if missing:
        at = f" ({where})" if where else ""
        raise TemplateError(
            f"template field {{{missing[0]}}} is not in the example{at}; "
            f"fields available: {', '.join(sorted(fields)) or 'none'}"
        )
    return template.format_map({n: fields[n] for n in names})


def escape_braces(text: str, keep: tuple[str, ...] = ()) -> str:
    """Makes model-written text safe as a template: braces become literal, except the
    placeholders named in `keep` (the fields the seed prompt uses)."""
    out = text.replace("{", "{{").replace("}", "}}")
    for name in keep:
        out = out.replace("{{" + name + "}}", "{" + name + "}")
    return out
