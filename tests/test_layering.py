"""docs/architecture.md's layers are the imports' truth: nothing imports upward, and no
two modules import each other (even through others). Every import counts: at the top
of a module, inside a function, under `if TYPE_CHECKING:`. The order of the layers is
read from the document itself, so the two cannot drift apart."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "promptascent"
DOC = REPO / "docs" / "architecture.md"


def layers() -> list[set[str]]:
    """The layers in the document, bottom first: each line of the block between
    `<!-- layers -->` and `<!-- /layers -->` names the units of one layer."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- layers -->(.*?)<!-- /layers -->", text, re.S)
    assert block is not None, "docs/architecture.md has no <!-- layers --> block"
    lines = [line.strip(" `\n") for line in block.group(1).splitlines()]
    top_down = [set(line.split()) for line in lines if line and not line.startswith("```")]
    return top_down[::-1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The unit a module belongs to: its folder under the package, or itself (a module
    at the top); the package's own __init__ and __main__ are the entry points."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__main__" else "promptascent"


def imports(module: str, source: str, modules: set[str]) -> Iterator[tuple[str, int]]:
    """Every promptascent module the source of `module` imports (from x import y: x.y
    when that is a module, else x), with its line; wherever the import statement is."""
    package = module if module in PACKAGES else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "promptascent":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "promptascent":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno


PATHS = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in PATHS}
PACKAGES = {module_name(p) for p in PATHS if p.name == "__init__.py"}


def graph() -> dict[str, set[tuple[str, int]]]:
    return {
        module_name(p): set(imports(module_name(p), p.read_text(encoding="utf-8"), MODULES))
        for p in PATHS
    }


def upward(edges: dict[str, set[tuple[str, int]]]) -> list[str]:
    """The imports against the document's layers, as "module:line imports target"."""
    rank = {u: i for i, layer in enumerate(layers()) for u in layer}
    wrong = []
    for module, targets in sorted(edges.items()):
        for target, line in sorted(targets):
            mine, theirs = unit(module), unit(target)
            if mine == "promptascent" or mine == theirs or theirs == "promptascent":
                continue  # the entry points import anything; a unit imports itself
            if rank[theirs] >= rank[mine]:
                wrong.append(f"{module}:{line} imports {target} ({mine} -> {theirs})")
    return wrong


def test_the_document_names_every_unit_of_the_package_in_one_layer() -> None:
    named = [u for layer in layers() for u in layer]
    assert len(named) == len(set(named)), "a unit is in two layers"
    units = {unit(m) for m in graph()}
    assert units - {"promptascent"} == set(named) - {"promptascent"}, (
        "units of src/promptascent the layers leave out or name wrongly"
    )


def test_nothing_imports_upward_or_sideways() -> None:
    wrong = upward(graph())
    assert not wrong, "imports against docs/architecture.md's layers:\n" + "\n".join(wrong)


def test_no_two_modules_import_each_other() -> None:
    edges = {m: {t for t, _ in targets if t != m} for m, targets in graph().items()}
    # a package's __init__ that re-exports its modules is reached through them, not a cycle
    cycles = [cycle for cycle in _cycles(edges) if len(cycle) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_the_check_finds_an_upward_import_wherever_it_is_written() -> None:
    """Not vacuous: the imports the layers once had are each reported, at the top of a
    module, inside a function and under TYPE_CHECKING alike."""
    store = """
from promptascent.search.pool import Candidate

def read():
    from promptascent.preference import duel
"""
    llm = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from promptascent.config.task import ModelSpec
"""
    preference = "from promptascent.runner import seed_prompt_of\n"
    edges = graph()
    for module, source in (
        ("promptascent.store.run_store", store),
        ("promptascent.llm.factory", llm),
        ("promptascent.preference.session", preference),
    ):
        edges[module] = edges[module] | set(imports(module, source, MODULES))
    assert upward(edges) == [
        "promptascent.llm.factory:4 imports promptascent.config.task (llm -> config)",
        "promptascent.preference.session:1 imports promptascent.runner (preference -> runner)",
        "promptascent.store.run_store:5 imports promptascent.preference.duel (store -> preference)",
        "promptascent.store.run_store:2 imports promptascent.search.pool (store -> search)",
    ]


def test_the_cycle_check_finds_two_modules_that_import_each_other() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in _cycles(edges) if len(c) > 1] == [["a", "b", "c"]]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each a list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out
