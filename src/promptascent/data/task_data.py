"""The train/dev/test splits and defaults a task file points at."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from promptascent.config.task import TaskSpec
from promptascent.data.example import Dataset
from promptascent.data.loaders import dataset_from_rows, load_dataset, load_split_folder
from promptascent.errors import ConfigError


@dataclass(frozen=True)
class TaskData:
    train: Dataset
    dev: Dataset
    test: Dataset | None
    seed_prompt: str | None
    metric: str | dict[str, Any] | None  # from a data folder: a built-in metric only
    description: str
    notes: tuple[str, ...] = ()


def load_task_data(spec: TaskSpec) -> TaskData:
    """Loads the splits. Without a dev split, train is split in two (seeded) so that
    candidates are never proposed and selected on the same examples."""
    d = spec.data
    notes: list[str] = []
    kw: dict[str, Any] = {
        "input_field": d.input_field,
        "target_field": d.target_field,
        "max_example_chars": d.max_example_chars,
    }
    seed_prompt: str | None = None
    metric: str | dict[str, Any] | None = None
    description = ""
    if d.examples is not None:
        if d.folder or d.train or d.dev or d.test:
            raise ConfigError("data: give either `examples` or data files, not both")
        train = dataset_from_rows(d.examples, name=spec.name, where="data.examples", **kw)
        dev = test = None
    elif d.folder is not None:
        if d.train or d.dev or d.test:
            raise ConfigError("data: give either `folder` or `train`/`dev`/`test`, not both")
        folder = spec.resolve(d.folder)
        assert folder is not None
        split = load_split_folder(folder, max_example_chars=d.max_example_chars)
        train, dev, test = split.train, split.dev, split.test
        seed_prompt, metric, description = split.seed_prompt, split.metric, split.description
        notes.extend(split.notes)
    else:
        if d.train is None:
            raise ConfigError("data: missing key 'train' (or 'folder' or 'examples')")
        train = load_dataset(spec.resolve(d.train), **kw)  # type: ignore[arg-type]
        dev = load_dataset(spec.resolve(d.dev), **kw) if d.dev else None  # type: ignore[arg-type]
        test = load_dataset(spec.resolve(d.test), **kw) if d.test else None  # type: ignore[arg-type]
    for loaded in (train, dev, test):
        notes.extend(loaded.notes if loaded is not None else ())
    if dev is None and not d.dev_from_train:
        dev = Dataset(f"{train.name}-dev", ())
        notes.append("no dev split: candidates are selected without labels")
    elif dev is None:
        if len(train) < 4:
            raise ConfigError(
                f"data: {len(train)} train examples and no dev split; need at least 4"
            )
        ids = [ex.id for ex in train]
        random.Random(spec.seed).shuffle(ids)
        half = len(ids) // 2
        train, dev = (
            train.subset(ids[:half]),
            Dataset(f"{train.name}-dev", train.subset(ids[half:]).examples),
        )
        notes.append(f"no dev split: train was split {half}/{len(ids) - half} into train/dev")
    if test is None:
        notes.append(
            "no test split: the result reports dev scores only"
            if len(dev)
            else "no test split: nothing is scored against labels"
        )
    limits = d.limits
    if "train" in limits:
        train = train.head(limits["train"])
    if "dev" in limits:
        dev = dev.head(limits["dev"])
    if test is not None and "test" in limits:
        test = test.head(limits["test"])
    return TaskData(train, dev, test, seed_prompt, metric, description, tuple(notes))
