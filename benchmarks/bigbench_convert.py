"""Converts every multiple-choice task of the bigbench 1.0.0 package into split folders.

    .venv/bin/python benchmarks/bigbench_convert.py [--cache DIR] [--out DIR]
        [--tasks navigate,snarks] [--check-shared ../shared/datasets/bigbench]

Gets the `bigbench==1.0.0` source package from PyPI once
(`pip download --no-deps --no-binary :all: bigbench==1.0.0`, or the wheel when that
fails) into `--cache` (default ~/.cache/promptascent/bigbench-1.0.0), keeps only its
`bigbench/benchmark_tasks/**/task.json` files there (reused when present), and writes
one split folder per multiple-choice task (every example has `target_scores`) into
`--out` (default ~/.cache/promptascent/bigbench-splits), in the format of
../shared/datasets/README.md: task.json (name, description, seed_prompt, kind, metric,
source, sizes) and train/dev/test.jsonl.

The conversion is the package's own (promptascent.data.loaders, as
`load_bigbench_task_json` does it): target = the highest-scoring choice, a seeded
shuffle cut 50 train / 50 dev / up to 300 test (small tasks in thirds), and an
`Options:` list appended to the input, in an order seeded by the example id, where
the choice sets differ between examples.

A task whose task.json has no examples but subfolders with their own task.json (BIG-bench
"subtasks") is converted one subtask at a time: each multiple-choice subtask becomes a
task named "<task>.<subtask>" (its own prompt, choices and splits). Generation tasks and
generation subtasks are counted and skipped. Writes `index.json` in `--out`: every task
converted (name, source task.json, split sizes, number of examples, whether the choices
vary) and every one skipped, with the reason.

`--check-shared DIR` converts the tasks that DIR also holds (only those named with
`--tasks`, if given) and says, file by file, whether the output is byte-identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any, cast

from _common import log

from promptascent.data.example import Dataset
from promptascent.data.loaders import SplitTask

# The package's BIG-bench conversion, as load_bigbench_task_json runs it; called on the
# parsed JSON so that a subtask can be named "<task>.<subtask>" before its example ids
# (which seed the order of the Options list) are made from the name.
from promptascent.data.loaders import _bigbench_task as bigbench_task
from promptascent.errors import DataError

VERSION = "1.0.0"
DEFAULT_CACHE = Path.home() / ".cache" / "promptascent" / f"bigbench-{VERSION}"
DEFAULT_OUT = Path.home() / ".cache" / "promptascent" / "bigbench-splits"
TASKS_DIR = "bigbench/benchmark_tasks"
SOURCE = f"BIG-bench (bigbench=={VERSION} on PyPI), Apache-2.0"


# --------------------------------------------------------------------------- the package


def benchmark_tasks(cache: Path) -> Path:
    """The package's benchmark_tasks folder (task.json files only) under `cache`,
    downloaded and extracted the first time."""
    root = cache / TASKS_DIR
    done = cache / ".extracted"
    if done.is_file() and root.is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    archive = _archive(cache) or _download(cache)
    log(f"extracting the task.json files of {archive.name} into {cache}")
    _extract_task_files(archive, cache)
    done.write_text(archive.name + "\n")
    return root


def _archive(cache: Path) -> Path | None:
    found = sorted(cache.glob(f"bigbench-{VERSION}*.tar.gz")) + sorted(
        cache.glob(f"bigbench-{VERSION}*.whl")
    )
    return found[0] if found else None


def _download(cache: Path) -> Path:
    """Downloads the package with pip: this interpreter's, then any other pip on PATH.
    Recent pip (26) refuses it after downloading (the package declares a direct-URL
    dependency, bleurt), so an older pip (23) may be what works."""
    pips = [[sys.executable, "-m", "pip"]]
    for name in ("pip", "pip3"):
        found = shutil.which(name)
        if found and [found] not in pips:
            pips.append([found])
    for pip in pips:
        for extra in (["--no-binary", ":all:"], []):  # the source package, else the wheel
            cmd = [*pip, "download", "--no-deps", "-d", str(cache), *extra, f"bigbench=={VERSION}"]
            log("running " + " ".join(cmd))
            if subprocess.run(cmd, check=False).returncode == 0 and _archive(cache):
                return cast(Path, _archive(cache))
    raise SystemExit(
        f"could not download bigbench=={VERSION} into {cache}: put bigbench-{VERSION}.tar.gz "
        "there (`pip download --no-deps --no-binary :all: bigbench==1.0.0` with pip 23 gets it)"
    )


def _extract_task_files(archive: Path, cache: Path) -> None:
    """Writes every `bigbench/benchmark_tasks/**/task.json` of the archive under `cache`
    (the package's leading version folder dropped)."""

    def target(name: str) -> Path | None:
        at = name.find(TASKS_DIR + "/")
        if at < 0 or not name.endswith("/task.json"):
            return None
        return cache / name[at:]

    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                dest = target(name)
                if dest is not None:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(z.read(name))
        return
    with tarfile.open(archive) as tar:
        for member in tar:
            dest = target(member.name)
            if dest is None or not member.isfile():
                continue
            f = tar.extractfile(member)
            assert f is not None
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.read())


# --------------------------------------------------------------------------- tasks


def task_files(root: Path) -> list[tuple[str, Path]]:
    """(converted name, task.json) for every task and subtask, sorted by name: a task
    whose task.json has examples is itself; one without, its subfolders' task.json
    files, named "<task>.<subtask>"."""
    out: list[tuple[str, Path]] = []
    for folder in sorted(p for p in root.iterdir() if (p / "task.json").is_file()):
        subs = sorted(p for p in folder.iterdir() if (p / "task.json").is_file())
        if subs and not _has_examples(folder / "task.json"):
            out.extend((f"{folder.name}.{s.name}", s / "task.json") for s in subs)
        else:
            out.append((folder.name, folder / "task.json"))
    return out


def _has_examples(path: Path) -> bool:
    return "examples" in json.loads(path.read_text(encoding="utf-8"))


def convert(name: str, path: Path) -> tuple[SplitTask | None, str]:
    """The task split as the package splits it, or None with the reason it is skipped."""
    data = json.loads(path.read_text(encoding="utf-8"))
    examples = data.get("examples")
    if not isinstance(examples, list) or not examples:
        return None, "no examples"
    if not all(isinstance(ex, dict) and "target_scores" in ex for ex in examples):
        return None, "generation (examples without target_scores)"
    try:
        return bigbench_task({**data, "name": name}, path), ""
    except DataError as e:
        return None, f"cannot be converted: {e}"


def write_split_folder(task: SplitTask, folder: Path) -> dict[str, int]:
    """Writes task.json and train/dev/test.jsonl as ../shared/datasets/README.md
    describes; returns the split sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[str, Dataset | None] = {"train": task.train, "dev": task.dev, "test": task.test}
    sizes = {s: len(d) if d is not None else 0 for s, d in splits.items()}
    info = {
        "name": task.name,
        "description": task.description,
        "seed_prompt": task.seed_prompt,
        "kind": "multiple_choice",
        "metric": task.metric,
        "source": SOURCE,
        "sizes": sizes,
    }
    (folder / "task.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    for split, data in splits.items():
        rows = [json.dumps(_row(ex), ensure_ascii=False) for ex in data or ()]
        (folder / f"{split}.jsonl").write_text("".join(r + "\n" for r in rows))
    return sizes


def _row(ex: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": ex.id, "input": ex.input, "choices": list(ex.choices)}
    row["target"] = ex.target
    if ex.also_accept:
        row["also_accept"] = list(ex.also_accept)
    return row


def _choices_vary(task: SplitTask) -> bool:
    sets = {tuple(ex.choices or ()) for d in (task.train, task.dev, task.test) for ex in d or ()}
    return len(sets) > 1


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--tasks", default="", help="comma-separated converted names (default all)")
    ap.add_argument("--check-shared", type=Path, default=None, metavar="DIR")
    args = ap.parse_args(argv)
    root = benchmark_tasks(args.cache.expanduser())
    wanted = {t for t in args.tasks.split(",") if t}
    files = task_files(root)
    if args.check_shared:
        shared = {p.name for p in args.check_shared.iterdir() if (p / "task.json").is_file()}
        wanted = (wanted or shared) & shared
    if wanted:
        unknown = wanted - {n for n, _ in files}
        if unknown:
            raise SystemExit(f"--tasks: not in the package: {', '.join(sorted(unknown))}")
        files = [(n, p) for n, p in files if n in wanted]
    out = args.out.expanduser()
    converted: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for name, path in files:
        task, why = convert(name, path)
        source = str(path.relative_to(root.parent.parent))
        if task is None:
            skipped.append({"name": name, "source": source, "reason": why})
            continue
        sizes = write_split_folder(task, out / name)
        converted.append(
            {
                "name": name,
                "source": source,
                "examples": sum(sizes.values()),
                "sizes": sizes,
                "choices_vary": _choices_vary(task),
            }
        )
        log(f"{name}: {sizes}")
    if not wanted:
        index = {"package": f"bigbench=={VERSION}", "converted": converted, "skipped": skipped}
        (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    subtasks = sum(1 for c in converted if "." in c["name"])
    print(
        f"{len(converted)} multiple-choice tasks converted into {out} "
        f"({len(converted) - subtasks} tasks, {subtasks} subtasks); {len(skipped)} skipped"
    )
    if args.check_shared:
        return 0 if check_shared(out, args.check_shared, [c["name"] for c in converted]) else 1
    return 0


def check_shared(out: Path, shared: Path, names: list[str]) -> bool:
    """Prints, per task and file, whether the conversion equals the shared file."""
    same = True
    for name in names:
        for f in ("task.json", "train.jsonl", "dev.jsonl", "test.jsonl"):
            a, b = out / name / f, shared / name / f
            equal = a.read_bytes() == b.read_bytes()
            same &= equal
            print(f"{name}/{f}: {'identical' if equal else 'DIFFERS'}")
    return same


if __name__ == "__main__":
    raise SystemExit(main())
