"""Loading datasets from JSONL, CSV, split folders and BIG-bench task.json files.

Every loader raises DataError with a one-line message naming the file and, where
there is one, the line ("data/train.jsonl:12: invalid JSON (...)"). Data is not
trusted: every row's text is checked as it is loaded (data/text.py: text that cannot
be encoded and rows over `max_example_chars` are errors, control characters are
removed and noted), and a task.json names only built-in metrics, never code.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.config.task import DEFAULT_MAX_EXAMPLE_CHARS
from promptascent.data.example import Dataset, Example
from promptascent.data.text import TextCheck
from promptascent.errors import ConfigError, DataError

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class SplitTask:
    """A task with its data split for optimisation (train, dev) and reporting (test).

    `seed_prompt` is a natural starting instruction; `metric` is a built-in metric
    spec (a name such as "choice_accuracy", or a mapping with its options). `notes`
    say what loading changed in the task's own texts (its datasets carry their own).
    """

    name: str
    description: str
    seed_prompt: str
    metric: str | dict[str, Any]
    train: Dataset
    dev: Dataset | None
    test: Dataset | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Fields:
    """Which row keys hold the input and the target."""

    input_field: str
    target_field: str
    input_fields: tuple[str, ...] | None

    def reserved(self) -> set[str]:
        keys = {"id", self.input_field, self.target_field, "choices", "also_accept"}
        return keys | set(self.input_fields or ())


# --------------------------------------------------------------------------- JSONL / CSV


def load_jsonl(
    path: str | Path,
    *,
    name: str | None = None,
    input_field: str = "input",
    target_field: str = "target",
    input_fields: Sequence[str] | None = None,
    max_example_chars: int = DEFAULT_MAX_EXAMPLE_CHARS,
) -> Dataset:
    """Loads one JSON object per line (blank lines skipped) into a Dataset.

    Row keys: `id` (string or integer; default "<file stem>-<line number>"), the input
    (`input_field`: a string or an object of strings; or, when `input_fields` is given,
    the object built from those keys), the target (`target_field`, optional: a string,
    numbers converted with str()), `choices` and `also_accept` (optional lists of
    strings; the target must be one of the choices). Other keys go to Example.meta.
    The dataset is named `name`, default the file stem. A UTF-8 BOM is accepted.
    DataError (naming file and line) for a missing or empty file, bytes that are not
    UTF-8, invalid JSON, a row that is not an object, a missing or mistyped field, a
    duplicate id, text that cannot be encoded as UTF-8 (a lone surrogate), or a row
    holding more than `max_example_chars` characters of text. Control characters are
    removed (data/text.py) and counted in the dataset's notes.
    """
    p = Path(path)
    fields = _Fields(input_field, target_field, _field_tuple(input_fields))
    check = TextCheck(max_example_chars)
    examples: list[Example] = []
    seen: dict[str, str] = {}
    for line_no, line in enumerate(_read_text(p).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{p}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {_json_type(row)}")
        example = _build_example(check.row(row, where), where, f"{p.stem}-{line_no}", fields)
        _check_unique(example.id, f"line {line_no}", seen, where)
        examples.append(example)
    return _finish(p, name, examples, check)


def load_csv(
    path: str | Path,
    *,
    name: str | None = None,
    input_field: str = "input",
    target_field: str = "target",
    input_fields: Sequence[str] | None = None,
    max_example_chars: int = DEFAULT_MAX_EXAMPLE_CHARS,
) -> Dataset:
    """Loads a CSV file with a header row into a Dataset, with load_jsonl's semantics.

    Every cell is a string. An empty `id` or target cell means none; `choices` and
    `also_accept` cells are lists separated by "|" (items stripped). Blank lines are
    skipped; line numbers in errors are those where a record starts. Same DataError
    discipline as load_jsonl, plus a row with more or fewer cells than the header.
    """
    p = Path(path)
    fields = _Fields(input_field, target_field, _field_tuple(input_fields))
    reader = csv.reader(io.StringIO(_read_text(p), newline=""))
    check = TextCheck(max_example_chars)
    header: list[str] | None = None
    examples: list[Example] = []
    seen: dict[str, str] = {}
    last_line = 0
    for cells in _csv_rows(reader, p):
        start, last_line = last_line + 1, reader.line_num
        where = f"{p}:{start}"
        if not cells or all(not c.strip() for c in cells):
            continue
        if header is None:
            header = _csv_header(cells, where)
            continue
        if len(cells) != len(header):
            raise DataError(f"{where}: {len(cells)} cells, but the header has {len(header)}")
        row = _csv_row(check.row(dict(zip(header, cells, strict=True)), where), where)
        example = _build_example(row, where, f"{p.stem}-{start}", fields)
        _check_unique(example.id, f"line {start}", seen, where)
        examples.append(example)
    return _finish(p, name, examples, check)


def _csv_rows(reader: Any, path: Path) -> Any:
    try:
        yield from reader
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def _csv_header(cells: list[str], where: str) -> list[str]:
    header = [c.strip() for c in cells]
    if any(not h for h in header):
        raise DataError(f"{where}: the header has an empty column name")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{where}: the header repeats column {dupes[0]!r}")
    return header


def _csv_row(cells: dict[str, str], where: str) -> dict[str, Any]:
    """A CSV record as a JSONL-like row: empty cells are absent, lists are split on "|"."""
    row: dict[str, Any] = {k: v for k, v in cells.items() if v != ""}
    for key in ("choices", "also_accept"):
        if key in row:
            items = [item.strip() for item in row[key].split("|")]
            if any(not item for item in items):
                raise DataError(f"{where}: '{key}' has an empty item ({row[key]!r})")
            row[key] = items
    return row


# --------------------------------------------------------------------------- split folders


def load_split_folder(
    folder: str | Path, *, max_example_chars: int = DEFAULT_MAX_EXAMPLE_CHARS
) -> SplitTask:
    """Loads a folder with task.json and train.jsonl, dev.jsonl, test.jsonl.

    task.json holds `name` (default the folder name), `description`, `seed_prompt`
    (default the description), `metric` (default "choice_accuracy" when `kind` is
    "multiple_choice", else "exact_match"); other keys are ignored. The metric is a
    built-in one, by name or as a mapping with its options: a data folder is data, and
    code ("module:function") is a ConfigError (code metrics belong in the task file).
    dev.jsonl and test.jsonl are optional (None when absent). DataError when task.json
    or train.jsonl is missing or malformed, or when an id appears in two splits.
    """
    root = Path(folder)
    if not root.is_dir():
        what = "is a file, not a data folder" if root.exists() else "data folder not found"
        raise DataError(f"{root}: {what}")
    task_path = root / "task.json"
    if not task_path.is_file():
        raise DataError(
            f"{task_path}: file not found (a data folder has task.json and train.jsonl)"
        )
    info = _read_json(task_path)
    if not isinstance(info, dict):
        raise DataError(f"{task_path}: expected a JSON object, got {_json_type(info)}")
    check = TextCheck(max_example_chars)
    name = _opt_text(info, "name", task_path, check) or root.name
    description = _opt_text(info, "description", task_path, check) or ""
    seed_prompt = _opt_text(info, "seed_prompt", task_path, check) or description
    kind = _opt_str(info, "kind", task_path)
    metric = _builtin_metric(info.get("metric"), task_path) or _default_metric(
        kind == "multiple_choice"
    )
    splits: dict[str, Dataset | None] = {}
    for split in ("train", "dev", "test"):
        path = root / f"{split}.jsonl"
        required = split == "train"
        if required and not path.is_file():
            raise DataError(f"{path}: file not found (a data folder has task.json and train.jsonl)")
        splits[split] = (
            load_jsonl(path, name=f"{name}/{split}", max_example_chars=max_example_chars)
            if required or path.exists()
            else None
        )
    _check_disjoint(root, splits)
    train = splits["train"]
    assert train is not None
    return SplitTask(
        name,
        description,
        seed_prompt,
        metric,
        train,
        splits["dev"],
        splits["test"],
        check.note(str(task_path)),
    )


def _builtin_metric(value: Any, task_path: Path) -> str | dict[str, Any] | None:
    """A task.json's metric: a name or a mapping with a "name", never code."""
    if value is None:
        return None
    name = value.get("name") if isinstance(value, dict) else value
    if not isinstance(name, str):
        raise DataError(
            f"{task_path}: 'metric' must be a metric name or a mapping with a 'name', "
            f"got {_json_type(value)}"
        )
    if ":" in name:
        raise ConfigError(
            f"{task_path}: metric {name!r} names code, and a data folder may name only a "
            "built-in metric: code metrics belong in the task file you pass (metric: ...)"
        )
    return value


def _check_disjoint(root: Path, splits: Mapping[str, Dataset | None]) -> None:
    owner: dict[str, str] = {}
    for split, data in splits.items():
        for ex in data or ():
            if ex.id in owner:
                raise DataError(
                    f"{root}: id {ex.id!r} is in both {owner[ex.id]}.jsonl and {split}.jsonl"
                )
            owner[ex.id] = split


def _default_metric(multiple_choice: bool) -> str:
    return "choice_accuracy" if multiple_choice else "exact_match"


# --------------------------------------------------------------------------- BIG-bench


def load_bigbench_task_json(
    path: str | Path,
    *,
    rng_seed: int = 0,
    split: tuple[int, int, int] = (50, 50, 300),
    max_example_chars: int = DEFAULT_MAX_EXAMPLE_CHARS,
) -> SplitTask:
    """Loads an original BIG-bench task.json and splits it into train, dev and test.

    Keys: `name` (default the folder name), `description`, `task_prefix` (the seed
    prompt, stripped; default the description) and `examples`, each with an `input`
    and either `target_scores` {choice: score} or `target` (a string, or a list whose
    first item is the target and the rest also_accept). Multiple choice when every
    example has target_scores: the target is the highest-scoring choice (the first one
    on a tie) and metric "choice_accuracy"; otherwise "exact_match".

    Where the choice sets differ between examples, each example's choices are put in a
    random order seeded by its id and listed after its input ("\\n\\nOptions:\\n- a\\n- b");
    where all examples share one set, its order is kept and the input is unchanged.
    Inputs are stripped. Example i gets id "<name>-<i>"; other example keys go to meta.

    The examples are shuffled with random.Random(rng_seed) and cut into `split` =
    (train, dev, test) sizes; test takes at most what is left. When fewer than
    train + dev examples would be left for test, the examples are instead divided
    evenly among the splits with a non-zero size (thirds by default). An empty split is
    None. DataError for a malformed file or fewer than 3 examples, and for text as
    load_jsonl checks it (control characters are removed and noted); ConfigError for a
    bad `split`.
    """
    p = Path(path)
    data = _read_json(p)
    if not isinstance(data, dict):
        raise DataError(f"{p}: expected a JSON object, got {_json_type(data)}")
    return _bigbench_task(data, p, rng_seed=rng_seed, split=split, max_chars=max_example_chars)


@dataclass(frozen=True)
class _BigBenchTask:
    """A BIG-bench task.json converted, before splitting; examples in file order."""

    name: str
    description: str
    seed_prompt: str
    metric: str
    examples: list[Example]
    notes: tuple[str, ...]


def _bigbench_task(
    data: dict[str, Any],
    p: Path,
    *,
    rng_seed: int = 0,
    split: tuple[int, int, int] = (50, 50, 300),
    max_chars: int = DEFAULT_MAX_EXAMPLE_CHARS,
) -> SplitTask:
    sizes = _check_split(split)
    task = _bigbench_convert(data, p, max_chars)
    parts = _split(task.examples, rng_seed, sizes, p)
    datasets = [Dataset(f"{task.name}/{s}", tuple(part)) if part else None for s, part in parts]
    train, dev, test = datasets
    assert train is not None  # sizes[0] >= 1 and n >= 3 give train at least one example
    return SplitTask(
        task.name, task.description, task.seed_prompt, task.metric, train, dev, test, task.notes
    )


def _bigbench_convert(data: dict[str, Any], p: Path, max_chars: int) -> _BigBenchTask:
    check = TextCheck(max_chars)
    name = _opt_text(data, "name", p, check) or p.parent.name or p.stem
    description = _opt_text(data, "description", p, check) or ""
    seed_prompt = (_opt_text(data, "task_prefix", p, check) or "").strip() or description
    raw = data.get("examples")
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{p}: 'examples' must be a non-empty list")
    for i, ex in enumerate(raw):
        if not isinstance(ex, dict):
            raise DataError(f"{p}: example {i} is {_json_type(ex)}, expected an object")
    raw = [check.row(ex, f"{p}: example {i}") for i, ex in enumerate(raw)]
    multiple_choice = "target_scores" in raw[0]
    examples = [_bigbench_example(ex, i, name, p, multiple_choice) for i, ex in enumerate(raw)]
    if multiple_choice and len({frozenset(ex.choices or ()) for ex in examples}) > 1:
        examples = [_with_options(ex) for ex in examples]
    metric = _default_metric(multiple_choice)
    return _BigBenchTask(name, description, seed_prompt, metric, examples, check.note(str(p)))


def _bigbench_example(
    ex: dict[str, Any], i: int, name: str, p: Path, multiple_choice: bool
) -> Example:
    where = f"{p}: example {i}"
    text = ex.get("input")
    if not isinstance(text, str):
        raise DataError(f"{where}: 'input' must be a string")
    meta = {k: v for k, v in ex.items() if k not in ("input", "target", "target_scores")}
    ex_id = f"{name}-{i}"
    if multiple_choice:
        scores = ex.get("target_scores")
        if not isinstance(scores, dict) or not scores:
            raise DataError(f"{where}: 'target_scores' must be a non-empty object")
        for choice, score in scores.items():
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise DataError(f"{where}: score of {choice!r} must be a number")
        choices = list(scores)
        target = max(choices, key=lambda c: scores[c])
        return Example(ex_id, text.strip(), target, tuple(choices), meta=meta)
    if "target_scores" in ex:
        raise DataError(f"{where}: has 'target_scores' but example 0 does not")
    target_value = ex.get("target")
    targets = target_value if isinstance(target_value, list) else [target_value]
    if not targets or not all(_is_scalar(t) for t in targets):
        raise DataError(f"{where}: 'target' must be a string or a non-empty list of strings")
    answers = tuple(str(t) for t in targets)
    return Example(ex_id, text.strip(), answers[0], also_accept=answers[1:], meta=meta)


def _with_options(ex: Example) -> Example:
    """The example with its choices in an order seeded by its id, listed after the input."""
    choices = list(ex.choices or ())
    random.Random(ex.id).shuffle(choices)
    options = "\n".join(f"- {c}" for c in choices)
    text = f"{ex.input_text}\n\nOptions:\n{options}"
    return Example(ex.id, text, ex.target, tuple(choices), ex.also_accept, meta=ex.meta)


def _check_split(split: Sequence[int]) -> tuple[int, int, int]:
    if (
        len(split) != 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in split)
        or split[0] < 1
    ):
        raise ConfigError(
            f"split must be three sizes (train, dev, test) with train >= 1, got {split!r}"
        )
    return split[0], split[1], split[2]


def _split(
    examples: list[Example], rng_seed: int, sizes: tuple[int, int, int], p: Path
) -> list[tuple[str, list[Example]]]:
    n = len(examples)
    if n < 3:
        raise DataError(f"{p}: {n} example(s); at least 3 are needed to split")
    order = list(range(n))
    random.Random(rng_seed).shuffle(order)
    shuffled = [examples[i] for i in order]
    train, dev, test = sizes
    if n - train - dev < train + dev:
        active = [s > 0 for s in sizes]
        share = n // sum(active)
        counts = [share if a else 0 for a in active]
        last = max(i for i, a in enumerate(active) if a)
        counts[last] += n - sum(counts)
    else:
        counts = [train, dev, min(test, n - train - dev)]
    cuts = [0, counts[0], counts[0] + counts[1], sum(counts)]
    names = ("train", "dev", "test")
    return [(names[i], shuffled[cuts[i] : cuts[i + 1]]) for i in range(3)]


# --------------------------------------------------------------------------- dispatch


def load_dataset(
    path: str | Path,
    *,
    name: str | None = None,
    input_field: str = "input",
    target_field: str = "target",
    input_fields: Sequence[str] | None = None,
    max_example_chars: int = DEFAULT_MAX_EXAMPLE_CHARS,
) -> Dataset:
    """Loads one dataset file, choosing the loader by its extension.

    ".jsonl": load_jsonl; ".csv": load_csv; ".json": a list of row objects (read like
    JSONL rows), or an original BIG-bench task (an object with "examples"), whose
    examples all come back, unsplit, in file order, converted as by
    load_bigbench_task_json. The keyword options are load_jsonl's; the field options
    do not apply to a BIG-bench file (ConfigError if changed). DataError for a folder,
    any other extension or JSON shape. For a split task use load_task.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a folder, not a dataset file (load it as a task)")
    suffix = p.suffix.lower()
    opts: dict[str, Any] = {
        "input_field": input_field,
        "target_field": target_field,
        "input_fields": input_fields,
        "max_example_chars": max_example_chars,
    }
    if suffix == ".jsonl":
        return load_jsonl(p, name=name, **opts)
    if suffix == ".csv":
        return load_csv(p, name=name, **opts)
    if suffix != ".json":
        raise DataError(
            f"{p}: unknown dataset format {p.suffix or '(no extension)'!r}; "
            "expected .jsonl, .csv or .json"
        )
    data = _read_json(p)
    if isinstance(data, list):
        fields = _Fields(input_field, target_field, _field_tuple(input_fields))
        check = TextCheck(max_example_chars)
        return _finish(
            p, name, _row_examples(data, str(p), p.stem, fields, "a JSON object", check), check
        )
    if isinstance(data, dict) and "examples" in data:
        if (input_field, target_field, input_fields) != ("input", "target", None):
            raise ConfigError(f"{p}: field options do not apply to a BIG-bench task.json")
        task = _bigbench_convert(data, p, max_example_chars)
        return Dataset(name or task.name, tuple(task.examples), task.notes)
    raise DataError(f"{p}: neither a list of examples nor a BIG-bench task (no 'examples')")


def load_task(
    path: str | Path,
    *,
    rng_seed: int = 0,
    split: tuple[int, int, int] = (50, 50, 300),
    max_example_chars: int = DEFAULT_MAX_EXAMPLE_CHARS,
) -> SplitTask:
    """Loads a split task: a split folder, its task.json (load_split_folder), or an
    original BIG-bench task.json (load_bigbench_task_json, which alone uses `rng_seed`
    and `split`; a split folder keeps its own splits). DataError for anything else.
    """
    p = Path(path)
    if p.is_dir():
        return load_split_folder(p, max_example_chars=max_example_chars)
    if p.suffix.lower() != ".json":
        raise DataError(f"{p}: a task is a folder or a task.json file")
    data = _read_json(p)
    if isinstance(data, dict) and "examples" in data:
        return _bigbench_task(data, p, rng_seed=rng_seed, split=split, max_chars=max_example_chars)
    if isinstance(data, dict) and (p.parent / "train.jsonl").exists():
        return load_split_folder(p.parent, max_example_chars=max_example_chars)
    raise DataError(f"{p}: neither a BIG-bench task (no 'examples') nor a split folder's task.json")


def _row_examples(
    rows: Sequence[Any],
    where: str,
    id_prefix: str,
    fields: _Fields,
    expected: str,
    check: TextCheck,
) -> list[Example]:
    """Examples from parsed rows (ids default to "<id_prefix>-<i>"); DataError naming
    `where` and the item for a row that is not a mapping, is malformed or repeats an id,
    or whose text `check` refuses."""
    examples: list[Example] = []
    seen: dict[str, str] = {}
    for i, row in enumerate(rows):
        at = f"{where}: item {i}"
        if not isinstance(row, dict):
            raise DataError(f"{at}: expected {expected}, got {_json_type(row)}")
        example = _build_example(check.row(row, at), at, f"{id_prefix}-{i}", fields)
        _check_unique(example.id, f"item {i}", seen, at)
        examples.append(example)
    return examples


# --------------------------------------------------------------------------- rows


def dataset_from_rows(
    rows: Sequence[Any],
    *,
    name: str,
    where: str,
    input_field: str = "input",
    target_field: str = "target",
    max_example_chars: int = DEFAULT_MAX_EXAMPLE_CHARS,
) -> Dataset:
    """Rows given inline (a task file's `data.examples`), read like JSONL rows; ids
    default to "<name>-<i>". DataError naming `where` and the item when malformed."""
    fields = _Fields(input_field, target_field, None)
    check = TextCheck(max_example_chars)
    examples = _row_examples(rows, where, name, fields, "a mapping", check)
    if not examples:
        raise DataError(f"{where}: no examples")
    return Dataset(name, tuple(examples), check.note(where))


def _build_example(row: Mapping[str, Any], where: str, default_id: str, f: _Fields) -> Example:
    """One Example from a parsed row; DataError (prefixed with `where`) when malformed."""
    raw_id = row.get("id")
    if raw_id is None or raw_id == "":
        ex_id = default_id
    elif isinstance(raw_id, str) or (isinstance(raw_id, int) and not isinstance(raw_id, bool)):
        ex_id = str(raw_id)
    else:
        raise DataError(f"{where}: 'id' must be a string or an integer, got {_json_type(raw_id)}")
    target_raw = row.get(f.target_field)
    if target_raw is not None and not _is_scalar(target_raw):
        raise DataError(
            f"{where}: {f.target_field!r} must be a string or a number, "
            f"got {_json_type(target_raw)}"
        )
    target = None if target_raw is None else str(target_raw)
    choices = _str_list(row, "choices", where)
    also_accept = _str_list(row, "also_accept", where)
    if choices is not None:
        if not choices:
            raise DataError(f"{where}: 'choices' is empty")
        if len(set(choices)) != len(choices):
            raise DataError(f"{where}: 'choices' repeats an item")
        if target is not None and target not in choices:
            raise DataError(f"{where}: target {target!r} is not one of the choices")
    meta = {k: v for k, v in row.items() if k not in f.reserved()}
    return Example(
        ex_id,
        _input(row, where, f),
        target,
        None if choices is None else tuple(choices),
        tuple(also_accept or ()),
        meta=meta,
    )


def _input(row: Mapping[str, Any], where: str, f: _Fields) -> str | dict[str, str]:
    if f.input_fields is not None:
        built: dict[str, str] = {}
        for key in f.input_fields:
            if key not in row or row[key] is None:
                raise DataError(f"{where}: missing input field {key!r}")
            if not _is_scalar(row[key]):
                raise DataError(
                    f"{where}: input field {key!r} must be a string, got {_json_type(row[key])}"
                )
            built[key] = str(row[key])
        return built
    if f.input_field not in row:
        raise DataError(f"{where}: missing input field {f.input_field!r}")
    value = row[f.input_field]
    if isinstance(value, str):
        return value
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        return dict(value)
    raise DataError(
        f"{where}: input field {f.input_field!r} must be a string or an object of strings, "
        f"got {_json_type(value)}"
    )


def _str_list(row: Mapping[str, Any], key: str, where: str) -> list[str] | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: {key!r} must be a list of strings, got {_json_type(value)}")
    return value


def _is_scalar(value: Any) -> bool:
    """A string or a number (not a bool): what str() may turn into a field."""
    return isinstance(value, str) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _check_unique(ex_id: str, place: str, seen: dict[str, str], where: str) -> None:
    """`place` is where this id is ("line 4", "item 3"); DataError naming the first."""
    if ex_id in seen:
        raise DataError(f"{where}: duplicate id {ex_id!r} (first at {seen[ex_id]})")
    seen[ex_id] = place


def _finish(p: Path, name: str | None, examples: list[Example], check: TextCheck) -> Dataset:
    if not examples:
        raise DataError(f"{p}: no examples")
    return Dataset(name or p.stem, tuple(examples), check.note(str(p)))


def _field_tuple(input_fields: Sequence[str] | None) -> tuple[str, ...] | None:
    if input_fields is None:
        return None
    if isinstance(input_fields, str) or not input_fields:
        raise ConfigError(f"input_fields must be a non-empty list of names, got {input_fields!r}")
    return tuple(input_fields)


# --------------------------------------------------------------------------- files


def _read_text(p: Path) -> str:
    """The file decoded as UTF-8 (a leading BOM dropped); DataError naming the line of
    the first byte that is not UTF-8."""
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    elif data[:2] in _UTF16_BOMS:
        raise DataError(f"{p}:1: not valid UTF-8: the file is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{p}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})") from None


def _read_json(p: Path) -> Any:
    text = _read_text(p)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{p}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None


def _opt_text(data: Mapping[str, Any], key: str, p: Path, check: TextCheck) -> str | None:
    """An optional string that reaches a model (a name, description or prompt): checked
    and cleaned like the rows' text."""
    value = _opt_str(data, key, p)
    return None if value is None else check.text(value, str(p), key)


def _opt_str(data: Mapping[str, Any], key: str, p: Path) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise DataError(f"{p}: {key!r} must be a string, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
