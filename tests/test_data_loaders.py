"""Tests for promptascent.data.loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptascent.data.example import Dataset
from promptascent.data.loaders import (
    SplitTask,
    load_bigbench_task_json,
    load_csv,
    load_dataset,
    load_jsonl,
    load_split_folder,
    load_task,
)
from promptascent.errors import ConfigError, DataError

FIXTURE = Path(__file__).parent / "data" / "bigbench_original" / "task.json"
# ../shared beside the repository (as in CI)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bigbench"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, *rows: object) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


# ----------------------------------------------------------------------------- JSONL


def test_jsonl_reads_fields_and_defaults(tmp_path: Path) -> None:
    p = write(
        tmp_path / "qa.jsonl",
        '{"id": "a", "input": "Q1", "target": "yes", "choices": ["yes", "no"]}\n'
        "\n"
        '{"input": "Q2", "target": 12, "also_accept": ["twelve"], "source": "x"}\n'
        '{"id": 7, "input": "Q3"}\n',
    )
    ds = load_jsonl(p)
    assert ds.name == "qa"
    assert [ex.id for ex in ds] == ["a", "qa-3", "7"]
    assert ds[0].choices == ("yes", "no")
    assert ds[1].target == "12"
    assert ds[1].also_accept == ("twelve",)
    assert ds[1].meta == {"source": "x"}
    assert ds[2].target is None
    assert load_jsonl(p, name="custom").name == "custom"


def test_jsonl_input_fields_and_custom_field_names(tmp_path: Path) -> None:
    p = jsonl(tmp_path / "d.jsonl", {"question": "Why?", "context": "Because.", "answer": "ok"})
    ds = load_jsonl(p, input_fields=["question", "context"], target_field="answer")
    assert ds[0].input == {"question": "Why?", "context": "Because."}
    assert ds[0].target == "ok"
    ds = load_jsonl(p, input_field="question", target_field="answer")
    assert ds[0].input == "Why?"
    assert ds[0].meta == {"context": "Because."}


def test_jsonl_accepts_object_input(tmp_path: Path) -> None:
    p = jsonl(tmp_path / "d.jsonl", {"input": {"q": "a", "c": "b"}, "target": "t"})
    assert load_jsonl(p)[0].input == {"q": "a", "c": "b"}


def test_jsonl_bom_is_accepted(tmp_path: Path) -> None:
    p = write(tmp_path / "d.jsonl", b'\xef\xbb\xbf{"input": "caf\xc3\xa9"}\n')
    assert load_jsonl(p)[0].input == "café"


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    p = write(tmp_path / "d.jsonl", '{"input": "a\u2028b"}\n{"input": "c"}\n')
    ds = load_jsonl(p)
    assert [ex.input for ex in ds] == ["a\u2028b", "c"]


@pytest.mark.parametrize(
    ("content", "line", "phrase"),
    [
        ('{"input": "a"}\n{"input": \n', 2, "invalid JSON"),
        ('{"input": "a"}\n[1, 2]\n', 2, "expected a JSON object"),
        ('{"input": "a"}\n\n{"target": "x"}\n', 3, "missing input field 'input'"),
        ('{"input": 3}\n', 1, "input field 'input'"),
        ('{"input": "a", "choices": "yes"}\n', 1, "'choices' must be a list of strings"),
        ('{"input": "a", "choices": ["a", 2]}\n', 1, "'choices' must be a list of strings"),
        ('{"input": "a", "also_accept": [null]}\n', 1, "'also_accept'"),
        ('{"input": "a", "target": ["x"]}\n', 1, "'target' must be a string or a number"),
        ('{"input": "a", "target": true}\n', 1, "'target'"),
        ('{"input": "a", "id": 1.5}\n', 1, "'id'"),
        ('{"input": "a", "target": "c", "choices": ["a", "b"]}\n', 1, "not one of the choices"),
        ('{"input": "a", "choices": []}\n', 1, "'choices' is empty"),
        (
            '{"id": "x", "input": "a"}\n{"id": "y", "input": "b"}\n{"id": "x", "input": "c"}\n',
            3,
            "duplicate id 'x'",
        ),
    ],
)
def test_jsonl_errors_name_file_and_line(
    tmp_path: Path, content: str, line: int, phrase: str
) -> None:
    p = write(tmp_path / "bad.jsonl", content)
    with pytest.raises(DataError) as info:
        load_jsonl(p)
    message = str(info.value)
    assert message.startswith(f"{p}:{line}: ")
    assert phrase in message
    assert "\n" not in message


def test_jsonl_non_utf8_names_the_line(tmp_path: Path) -> None:
    p = write(tmp_path / "latin1.jsonl", b'{"input": "a"}\n{"input": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not valid UTF-8"):
        load_jsonl(p)


def test_jsonl_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no examples"):
        load_jsonl(write(tmp_path / "empty.jsonl", "\n  \n"))
    with pytest.raises(DataError, match="file not found"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="missing input field 'q'"):
        load_jsonl(jsonl(tmp_path / "d.jsonl", {"input": "a"}), input_fields=["q"])


def test_input_fields_must_be_a_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_jsonl(jsonl(tmp_path / "d.jsonl", {"q": "a"}), input_fields="q")


# ----------------------------------------------------------------------------- CSV


def test_csv_reads_rows(tmp_path: Path) -> None:
    p = write(
        tmp_path / "d.csv",
        "id,input,target,choices,also_accept,note\n"
        'a,"Is it, really?",yes,yes | no,y,n1\n'
        "\n"
        ',"multi\nline",,,,\n'
        "c,plain,3,,three,\n",
    )
    ds = load_csv(p)
    assert [ex.id for ex in ds] == ["a", "d-4", "c"]
    assert ds[0].input == "Is it, really?"
    assert ds[0].choices == ("yes", "no")
    assert ds[0].also_accept == ("y",)
    assert ds[0].meta == {"note": "n1"}
    assert ds[1].input == "multi\nline"
    assert ds[1].target is None
    assert ds[1].choices is None
    assert ds[2].target == "3"
    assert ds[2].also_accept == ("three",)


def test_csv_input_fields(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "question,context,answer\nWhy?,Because.,ok\n")
    ds = load_csv(p, input_fields=["question", "context"], target_field="answer")
    assert ds[0].input == {"question": "Why?", "context": "Because."}
    assert ds[0].target == "ok"


def test_csv_bom_accepted(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", b"\xef\xbb\xbfinput,target\nx,y\n")
    assert load_csv(p)[0].input == "x"


@pytest.mark.parametrize(
    ("content", "line", "phrase"),
    [
        ("input,target\nx,y\nz\n", 3, "1 cells, but the header has 2"),
        ("question,target\nx,y\n", 2, "missing input field 'input'"),
        ("input,target,choices\nx,y,a|b\n", 2, "not one of the choices"),
        ("input,choices\nx,a||b\n", 2, "'choices' has an empty item"),
        ("id,input\na,x\nb,y\na,z\n", 4, "duplicate id 'a'"),
        ("input,input\nx,y\n", 1, "repeats column 'input'"),
    ],
)
def test_csv_errors_name_file_and_line(
    tmp_path: Path, content: str, line: int, phrase: str
) -> None:
    p = write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError) as info:
        load_csv(p)
    assert str(info.value).startswith(f"{p}:{line}: ")
    assert phrase in str(info.value)


def test_csv_empty_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no examples"):
        load_csv(write(tmp_path / "h.csv", "input,target\n"))
    with pytest.raises(DataError, match=r"l\.csv:3: not valid UTF-8"):
        load_csv(write(tmp_path / "l.csv", b"input\nok\ncaf\xe9\n"))


# ----------------------------------------------------------------------------- split folder


def make_folder(root: Path, *, dev: bool = True) -> Path:
    root.mkdir()
    (root / "task.json").write_text(
        json.dumps(
            {
                "name": "toy",
                "description": "A toy task",
                "seed_prompt": "Answer yes or no.",
                "kind": "multiple_choice",
                "metric": "choice_accuracy",
            }
        ),
        encoding="utf-8",
    )
    jsonl(
        root / "train.jsonl", {"id": "t1", "input": "a", "target": "yes", "choices": ["yes", "no"]}
    )
    if dev:
        jsonl(
            root / "dev.jsonl", {"id": "d1", "input": "b", "target": "no", "choices": ["yes", "no"]}
        )
    jsonl(root / "test.jsonl", {"id": "e1", "input": "c", "target": "no", "choices": ["yes", "no"]})
    return root


def test_split_folder(tmp_path: Path) -> None:
    task = load_split_folder(make_folder(tmp_path / "toy"))
    assert isinstance(task, SplitTask)
    assert (task.name, task.description, task.seed_prompt, task.metric) == (
        "toy",
        "A toy task",
        "Answer yes or no.",
        "choice_accuracy",
    )
    assert [ex.id for ex in task.train] == ["t1"]
    assert task.dev is not None and task.dev[0].id == "d1"
    assert task.test is not None and task.test[0].target == "no"


def test_split_folder_optional_dev(tmp_path: Path) -> None:
    task = load_split_folder(make_folder(tmp_path / "toy", dev=False))
    assert task.dev is None


def test_split_folder_missing_files(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "toy")
    (root / "train.jsonl").unlink()
    with pytest.raises(DataError, match=r"train\.jsonl: file not found"):
        load_split_folder(root)
    (root / "task.json").unlink()
    with pytest.raises(DataError, match=r"task\.json: file not found"):
        load_split_folder(root)


def test_split_folder_rejects_id_in_two_splits(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "toy")
    jsonl(root / "test.jsonl", {"id": "t1", "input": "c", "target": "no", "choices": ["yes", "no"]})
    with pytest.raises(DataError, match=r"both train\.jsonl and test\.jsonl"):
        load_split_folder(root)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")
def test_every_shared_task_loads() -> None:
    for folder in sorted(SHARED.iterdir()):
        task = load_split_folder(folder)
        info = json.loads((folder / "task.json").read_text(encoding="utf-8"))
        assert task.name == info["name"]
        assert task.metric == info["metric"]
        assert len(task.train) == info["sizes"]["train"]
        assert task.test is not None and len(task.test) == info["sizes"]["test"]


# ----------------------------------------------------------------------------- BIG-bench


def test_bigbench_fixture_multiple_choice() -> None:
    task = load_bigbench_task_json(FIXTURE)
    assert task.name == "emoji_movie"
    assert task.metric == "choice_accuracy"
    assert task.seed_prompt == "Guess popular movies from their emoji descriptions"
    assert task.dev is not None and task.test is not None
    assert (len(task.train), len(task.dev), len(task.test)) == (3, 3, 4)
    all_examples = [*task.train, *task.dev, *task.test]
    assert sorted(ex.id for ex in all_examples) == sorted(f"emoji_movie-{i}" for i in range(10))
    raw = json.loads(FIXTURE.read_text(encoding="utf-8"))["examples"]
    for ex in all_examples:
        original = raw[int(ex.id.rsplit("-", 1)[1])]
        scores = original["target_scores"]
        assert ex.target == max(scores, key=scores.get)
        assert ex.choices is not None and sorted(ex.choices) == sorted(scores)
        options = "\n".join(f"- {c}" for c in ex.choices)
        assert ex.input == f"{original['input'].strip()}\n\nOptions:\n{options}"


def test_bigbench_is_deterministic_and_seeded() -> None:
    a = load_bigbench_task_json(FIXTURE)
    b = load_bigbench_task_json(FIXTURE)
    c = load_bigbench_task_json(FIXTURE, rng_seed=1)
    assert a == b
    assert [ex.id for ex in a.train] != [ex.id for ex in c.train]
    # The order of choices depends on the example, not on the split seed.
    choices_a = {ex.id: ex.choices for ex in [*a.train, *(a.dev or ()), *(a.test or ())]}
    choices_c = {ex.id: ex.choices for ex in [*c.train, *(c.dev or ()), *(c.test or ())]}
    assert choices_a == choices_c


@pytest.mark.skipif(not (SHARED / "emoji_movie").is_dir(), reason="shared datasets not present")
def test_bigbench_matches_the_shared_conversion() -> None:
    shared = load_split_folder(SHARED / "emoji_movie")
    by_id = {ex.id: ex for ex in [*shared.train, *(shared.dev or ()), *(shared.test or ())]}
    task = load_bigbench_task_json(FIXTURE)
    for ex in [*task.train, *(task.dev or ()), *(task.test or ())]:
        assert (ex.input, ex.target, ex.choices) == (
            by_id[ex.id].input,
            by_id[ex.id].target,
            by_id[ex.id].choices,
        )


def bigbench_file(tmp_path: Path, examples: list[dict[str, object]], **extra: object) -> Path:
    data = {"name": "gen", "description": "Count things", **extra, "examples": examples}
    return write(tmp_path / "task.json", json.dumps(data))


def test_bigbench_generation_targets_and_split_sizes(tmp_path: Path) -> None:
    examples: list[dict[str, object]] = [
        {"input": f" q{i} ", "target": [str(i), f"n{i}"]} for i in range(400)
    ]
    examples[0]["target"] = "only"
    p = bigbench_file(tmp_path, examples, task_prefix="Count:\n")
    task = load_bigbench_task_json(p)
    assert task.metric == "exact_match"
    assert task.seed_prompt == "Count:"
    assert task.dev is not None and task.test is not None
    assert (len(task.train), len(task.dev), len(task.test)) == (50, 50, 300)
    ex = next(e for e in [*task.train, *task.dev, *task.test] if e.id == "gen-5")
    assert (ex.input, ex.target, ex.also_accept, ex.choices) == ("q5", "5", ("n5",), None)
    small = load_bigbench_task_json(bigbench_file(tmp_path, examples[:181]))
    assert small.dev is not None and small.test is not None
    assert (len(small.train), len(small.dev), len(small.test)) == (60, 60, 61)
    custom = load_bigbench_task_json(p, split=(10, 0, 5))
    assert (len(custom.train), custom.dev, len(custom.test or ())) == (10, None, 5)


def test_bigbench_shared_choice_set_keeps_order_and_input(tmp_path: Path) -> None:
    examples: list[dict[str, object]] = [
        {"input": f"s{i}", "target_scores": {"plausible": i % 2, "implausible": 1 - i % 2}}
        for i in range(9)
    ]
    task = load_bigbench_task_json(bigbench_file(tmp_path, examples))
    for ex in [*task.train, *(task.dev or ()), *(task.test or ())]:
        assert ex.choices == ("plausible", "implausible")
        assert "Options" not in ex.input_text


@pytest.mark.parametrize(
    ("examples", "phrase"),
    [
        ([], "'examples' must be a non-empty list"),
        ([{"input": "a", "target": "b"}] * 2, "at least 3"),
        ([{"input": 1, "target": "b"}] * 3, "example 0: 'input' must be a string"),
        ([{"input": "a", "target": []}] * 3, "'target' must be a string"),
        ([{"input": "a", "target_scores": {"x": "high"}}] * 3, "score of 'x'"),
        (
            [{"input": "a", "target_scores": {"x": 1}}, {"input": "b", "target": "x"}] * 2,
            "example 1: 'target_scores'",
        ),
    ],
)
def test_bigbench_errors(tmp_path: Path, examples: list[dict[str, object]], phrase: str) -> None:
    with pytest.raises(DataError, match=phrase):
        load_bigbench_task_json(bigbench_file(tmp_path, examples))


def test_bigbench_bad_split(tmp_path: Path) -> None:
    p = bigbench_file(tmp_path, [{"input": "a", "target": "b"}] * 5)
    with pytest.raises(ConfigError):
        load_bigbench_task_json(p, split=(0, 1, 1))


# ----------------------------------------------------------------------------- dispatch


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    assert load_dataset(jsonl(tmp_path / "a.jsonl", {"input": "x"}))[0].input == "x"
    csv_data = load_dataset(write(tmp_path / "a.csv", "q,target\nx,y\n"), input_field="q")
    assert (csv_data[0].input, csv_data[0].target) == ("x", "y")
    rows = load_dataset(write(tmp_path / "rows.json", json.dumps([{"input": "x", "target": "y"}])))
    assert isinstance(rows, Dataset) and rows[0].target == "y"
    assert rows[0].id == "rows-0"


def test_load_dataset_bigbench_is_unsplit() -> None:
    data = load_dataset(FIXTURE)
    assert data.name == "emoji_movie"
    assert [ex.id for ex in data] == [f"emoji_movie-{i}" for i in range(10)]
    task = load_bigbench_task_json(FIXTURE)
    split_examples = {ex.id: ex for ex in [*task.train, *(task.dev or ()), *(task.test or ())]}
    assert all(split_examples[ex.id] == ex for ex in data)
    with pytest.raises(ConfigError, match="field options"):
        load_dataset(FIXTURE, input_field="question")


def test_load_task_dispatch(tmp_path: Path) -> None:
    assert load_task(FIXTURE, rng_seed=3) == load_bigbench_task_json(FIXTURE, rng_seed=3)
    folder = make_folder(tmp_path / "toy")
    assert load_task(folder) == load_split_folder(folder)
    assert load_task(folder / "task.json") == load_split_folder(folder)
    with pytest.raises(DataError, match=r"a task is a folder or a task\.json"):
        load_task(folder / "train.jsonl")


def test_load_dataset_unknown_shapes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset format '\.txt'"):
        load_dataset(write(tmp_path / "a.txt", "x"))
    with pytest.raises(DataError, match="neither a list of examples"):
        load_dataset(write(tmp_path / "odd.json", '{"foo": 1}'))
    with pytest.raises(DataError, match="is a folder"):
        load_dataset(tmp_path)
    with pytest.raises(DataError, match="item 1: expected a JSON object"):
        load_dataset(write(tmp_path / "rows.json", '[{"input": "x"}, 3]'))


# ----------------------------------------------------------------------------- hostile text
# Data is not trusted: its text is checked as it is loaded, before anything is spent.


def test_a_lone_surrogate_is_refused_naming_file_line_and_field(tmp_path: Path) -> None:
    p = write(
        tmp_path / "train.jsonl",
        '{"input": "fine", "target": "a"}\n{"input": "bad \\ud800 text", "target": "b"}\n',
    )
    assert json.loads(p.read_text().splitlines()[1])["input"] == "bad \ud800 text"  # JSON says yes
    with pytest.raises(DataError, match=r"train\.jsonl:2: text in 'input' cannot be encoded"):
        load_jsonl(p)
    rows = [{"input": "ok", "target": "a"}, {"input": {"q": "\udfff"}, "target": "b"}]
    listed = write(tmp_path / "rows.json", json.dumps(rows))
    with pytest.raises(DataError, match=r"rows\.json: item 1: text in 'input' cannot be"):
        load_dataset(listed)
    choices = write(tmp_path / "c.jsonl", '{"input": "x", "choices": ["a", "\\udc80"]}\n')
    with pytest.raises(DataError, match=r"c\.jsonl:1: text in 'choices'.*\\udc80"):
        load_jsonl(choices)
    bigbench = {"examples": [{"input": "a\ud800", "target": "x"}] * 3}
    bb = write(tmp_path / "task.json", json.dumps(bigbench))
    with pytest.raises(DataError, match=r"task\.json: example 0: text in 'input'"):
        load_bigbench_task_json(bb)


def test_control_characters_are_removed_and_counted(tmp_path: Path) -> None:
    p = jsonl(
        tmp_path / "train.jsonl",
        {"input": "\x1b[31mred\x1b[0m dog\x00\x07", "target": "cat\x9b"},
        {"input": "tab\tnew\nline\r\nkept", "target": "x", "note": "\x1b]0;title\x07"},
    )
    ds = load_jsonl(p)
    assert ds[0].input == "[31mred[0m dog" and ds[0].target == "cat"
    assert ds[1].input == "tab\tnew\nline\r\nkept" and ds[1].meta == {"note": "]0;title"}
    assert ds.notes == (f"{p}: removed 7 control characters (such as ESC or NUL; tabs and "
                        "line breaks are kept)",)  # fmt: skip
    clean = jsonl(tmp_path / "clean.jsonl", {"input": "a", "target": "b"})
    assert load_jsonl(clean).notes == ()
    csv_file = write(tmp_path / "t.csv", "input,target\n\x1bhi,\x00x\n")
    assert (load_csv(csv_file)[0].input, load_csv(csv_file)[0].target) == ("hi", "x")
    assert "removed 2 control characters" in load_csv(csv_file).notes[0]


def test_a_data_folders_control_characters_reach_the_task_notes(tmp_path: Path) -> None:
    from promptascent.config.task import task_from_dict
    from promptascent.data.task_data import load_task_data

    folder = tmp_path / "data"
    folder.mkdir()
    write(folder / "task.json", json.dumps({"seed_prompt": "Say\x1b[2J it", "metric": "contains"}))
    jsonl(folder / "train.jsonl", *({"input": f"x{i}\x07", "target": "y"} for i in range(4)))
    jsonl(folder / "dev.jsonl", {"input": "z", "target": "y"})
    split = load_split_folder(folder)
    assert split.seed_prompt == "Say[2J it"
    data = load_task_data(task_from_dict({"name": "t", "data": {"folder": str(folder)}}))
    assert any("task.json: removed 1 control character " in n for n in data.notes)
    assert any("train.jsonl: removed 4 control characters" in n for n in data.notes)


def test_an_oversize_example_is_refused_naming_file_line_and_the_setting(tmp_path: Path) -> None:
    p = jsonl(
        tmp_path / "train.jsonl",
        {"input": "short", "target": "a"},
        {"input": "x" * 60, "target": "a", "meta": ["y" * 50]},
    )
    # Every string counts, keys included: 60 + 1 + 50 + len("input" "target" "meta") = 126.
    assert len(load_jsonl(p, max_example_chars=126)) == 2
    with pytest.raises(DataError, match=r"train\.jsonl:2: the example holds 126 characters"):
        load_jsonl(p, max_example_chars=125)
    big = jsonl(tmp_path / "big.jsonl", {"input": "x" * 100_001, "target": "a"})
    with pytest.raises(
        DataError, match=r"big\.jsonl:1: .*more than 100,000 \(data\.max_example_chars"
    ):
        load_jsonl(big)
    assert len(load_dataset(big, max_example_chars=200_000)) == 1
