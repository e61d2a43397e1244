"""Synthetic data: diverse inputs for a drafted task, with proposed labels.

Each generation asks the optimizer model for one input of a given label (the label
with the fewest kept inputs, so labels stay balanced), in a varied length and
style; a share of them are boundary cases between two adjacent labels (as in
Intent-based Prompt Calibration), whose proposed label is recorded. Replies are
read tolerantly; malformed ones (empty, too long, echoing the template, a label as
the whole input) and duplicates (exact after normalising, or near: character
3-gram Jaccard at or above a threshold) are dropped and counted by reason. An
optional label check asks the model to classify each kept input, and records or
drops the ones where its answer differs from the proposed label.

Every call goes through a `ModelClient`: the budget is checked before it, and its
reply is journaled, so rerunning with the same seed replays the same requests and
pays for none of them again. Running out of budget keeps the rows so far.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from promptascent.data.example import Example
from promptascent.describe.intent import TaskDraft, load_template
from promptascent.errors import (
    BudgetExhausted,
    ConfigError,
    DataError,
    ModelError,
    ModelUnavailable,
)
from promptascent.events import Event, EventSink
from promptascent.llm.client import ModelClient
from promptascent.llm.types import CompletionRequest, Message
from promptascent.optimizers.parsing import extract_tagged
from promptascent.prompts.template import fill
from promptascent.store.files import write_atomic

MAX_EXAMPLES = 1000
NEAR_DUPLICATE = 0.75  # character 3-gram Jaccard at or above this: the same input reworded
MAX_INPUT_CHARS = 1200
MAX_INPUT_WORDS = 200
ACCEPTED = "accepted.jsonl"  # rows as they are accepted; replaced by the split files
DISAGREES = "label disagreement"  # drop reason: the label check named another label

LabelCheck = Literal["off", "record", "drop"]
"""The label check of a classification task's kept inputs: none; ask the model for
its label and record a different answer (`model_label`, the proposed label stays);
or ask and drop the inputs whose answer differs."""
LABEL_CHECKS: tuple[LabelCheck, ...] = ("off", "record", "drop")

LENGTHS = ("one short sentence", "two sentences", "three or four sentences", "a few words")
STYLES = (
    "in a plain style",
    "in a formal style",
    "in a casual style",
    "in an upset tone",
    "with concrete details",
    "written in a hurry, with a small typo",
    "as a question",
)


@dataclass(frozen=True)
class SynthProgress(Event):
    """One generation finished (kept or dropped), for progress displays and logs."""

    kept: int
    wanted: int
    attempts: int
    dropped: int


@dataclass(frozen=True)
class SynthResult:
    """What synthesis made. `splits` maps "train", "dev" (and "test") to examples;
    `dropped` counts discarded generations by reason; `stopped_by` names the budget
    limit (or failing model) that ended it early, None when it finished. With a
    label check, `label_disagreements` counts the kept examples whose check label
    differed (recorded as `model_label`; dropped ones count in `dropped` instead) and
    `labels_unchecked` the kept ones whose check failed or named no single label."""

    examples: tuple[Example, ...]
    splits: dict[str, tuple[Example, ...]]
    wanted: int
    attempts: int
    dropped: dict[str, int]
    stopped_by: str | None = None
    label_disagreements: int = 0
    labels_unchecked: int = 0
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def label_counts(self) -> dict[str, int]:
        counts = Counter(ex.target for ex in self.examples if ex.target is not None)
        return dict(counts)

    @property
    def boundary_cases(self) -> int:
        return sum(1 for ex in self.examples if ex.meta.get("boundary"))

    def summary(self) -> list[str]:
        """Lines for a log or a terminal."""
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        lines = [
            f"kept {len(self.examples)} of {self.wanted} wanted, from {self.attempts} "
            f"generations ({sizes})",
            f"dropped: {dropped}",
        ]
        if self.label_counts:
            balance = ", ".join(f"{k} {v}" for k, v in self.label_counts.items())
            lines.append(f"labels: {balance}; boundary cases: {self.boundary_cases}")
        if self.label_disagreements:
            lines.append(
                f"the model's own label differed on {self.label_disagreements} kept inputs "
                "(kept with the proposed label; see model_label in the files)"
            )
        if self.labels_unchecked:
            lines.append(
                f"the label check gave no usable answer on {self.labels_unchecked} kept inputs "
                "(kept with the proposed label)"
            )
        if self.stopped_by:
            lines.append(f"stopped early ({self.stopped_by}): the rows so far are kept")
        return lines


# --------------------------------------------------------------------------- duplicates


def normalize(text: str) -> str:
    """Case, punctuation and spacing removed: "Hello, World!" == "hello world"."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def shingles(text: str, k: int = 3) -> frozenset[str]:
    """The character k-grams of the normalised text (the text itself when shorter)."""
    t = normalize(text)
    if len(t) <= k:
        return frozenset({t}) if t else frozenset()
    return frozenset(t[i : i + k] for i in range(len(t) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_duplicate(a: str, b: str, threshold: float = NEAR_DUPLICATE) -> bool:
    """Whether two texts are the same input reworded a little: equal after
    normalising, or character 3-gram Jaccard similarity >= `threshold`."""
    return normalize(a) == normalize(b) or jaccard(shingles(a), shingles(b)) >= threshold


# --------------------------------------------------------------------------- one reply

_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|okay|ok)\b[,!.]?\s*|here(?:'s| is)[^:\n]*:\s*|"
    r"(?:new |example |an? )?(?:input|example|text|message)\s*(?:\d+)?\s*:\s*)",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’"


def read_generation(
    reply: str, draft: TaskDraft, *, finished: bool = True
) -> tuple[str | None, str]:
    """The input a generation reply holds, or (None, reason): "empty", "too short",
    "too long", "cut off" (the reply hit its token limit inside the input),
    "not text" (mostly digits and symbols), "echoes the template", "label as
    input". Paragraphs that repeat the task description are skipped."""
    tagged = extract_tagged(reply, "input")
    text = tagged if tagged is not None else reply
    text = re.sub(r"^```\w*\n?|\n?```$", "", text.strip()).strip()
    if tagged is None:
        task = normalize(draft.description)
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        kept = [p for p in paragraphs if task not in normalize(p)]
        if paragraphs and not kept:
            return None, "echoes the template"
        if len(kept) < len(paragraphs):
            text = "\n\n".join(kept)
        if not finished and len(kept) <= 1:
            return None, "cut off"
    previous = None
    while text != previous:
        previous = text
        kind = re.escape(draft.input_kind)
        text = re.sub(rf"^\s*(?:new |an? )?{kind}\s*:\s*", "", text, flags=re.I)
        text = _PREAMBLE.sub("", text, count=1).strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
    if tagged is None and "\n\n" in text:  # rambling on after the input
        text = text.split("\n\n", 1)[0].strip()
    text = re.sub(r"[ \t]+", " ", text).strip()
    if not text:
        return None, "empty"
    if len(text) < 4:
        return None, "too short"
    if len(text) > MAX_INPUT_CHARS or len(text.split()) > MAX_INPUT_WORDS:
        return None, "too long"
    if sum(ch.isalpha() for ch in text) < len(text) / 2:
        return None, "not text"
    low = text.casefold()
    if re.search(r"</?input>|write one new|between <|for this task", low) or normalize(
        text
    ) == normalize(draft.description):
        return None, "echoes the template"
    if draft.labels:
        words = normalize(text)
        for label in sorted(draft.labels, key=len, reverse=True):
            words = re.sub(rf"\b{re.escape(normalize(label))}\b", " ", words)
        leaked = words != normalize(text)
        if leaked and len(words.split()) < 3:
            return None, "label as input"
    return text, ""


def model_label(reply: str, labels: tuple[str, ...]) -> str | None:
    """The one label a classification reply names (whole words), None if it names
    none or several."""
    text = normalize(reply)
    named = [x for x in labels if re.search(rf"\b{re.escape(normalize(x))}\b", text)]
    # "not spam" also contains "spam": the longer label wins when it is there.
    named = [x for x in named if not any(x != y and normalize(x) in normalize(y) for y in named)]
    return named[0] if len(named) == 1 else None


# --------------------------------------------------------------------------- the loop


@dataclass
class _Slot:
    label: str | None
    other: str | None  # the adjacent label of a boundary case
    length: str
    style: str
    seed: int


def _next_slot(
    draft: TaskDraft,
    rng: random.Random,
    kept: Counter[str],
    tried: Counter[str],
    boundary_share: float,
) -> _Slot:
    labels = draft.labels
    label = other = None
    if labels:
        # The label with the fewest kept inputs (then fewest tries, then list order).
        label = min(labels, key=lambda x: (kept[x], tried[x], labels.index(x)))
        if len(labels) >= 2 and rng.random() < boundary_share:
            i = labels.index(label)
            neighbours = [labels[j] for j in (i - 1, i + 1) if 0 <= j < len(labels)]
            other = rng.choice(neighbours)
    return _Slot(label, other, rng.choice(LENGTHS), rng.choice(STYLES), rng.randrange(2**31))


def _generation_prompt(draft: TaskDraft, slot: _Slot) -> str:
    clause = ""
    if slot.label is not None:
        clause = f' whose right answer is "{slot.label}"'
        if slot.other is not None:
            clause += f', but only just: it could almost be "{slot.other}"'
    return fill(
        load_template("synth_input.txt"),
        {
            "description": draft.description,
            "input_kind": draft.input_kind,
            "label_clause": clause,
            "length": slot.length,
            "style": slot.style,
        },
    )


def synthesize(
    draft: TaskDraft,
    client: ModelClient,
    n: int,
    rng: random.Random,
    *,
    out_dir: Path | None = None,
    dev_fraction: float = 0.3,
    test_fraction: float = 0.0,
    boundary_share: float = 0.2,
    attempts_per_example: int = 3,
    check_labels: LabelCheck = "off",
    near_threshold: float = NEAR_DUPLICATE,
    temperature: float = 0.9,
    max_tokens: int = 120,
    emit: EventSink | None = None,
) -> SynthResult:
    """Up to `n` synthetic examples for `draft`, asked of `client` (the optimizer
    model) in at most `attempts_per_example * n` generations, split (seeded by `rng`,
    balanced by label) into train, dev (`dev_fraction`) and test (`test_fraction`,
    when > 0). With `check_labels` "record" or "drop", each kept input of a
    classification task is also classified by the model (one cheap call); a
    different answer is, with "record", recorded as `model_label` and counted (the
    proposed label is kept), and with "drop", a reason to drop the input (counted as
    "label disagreement"). A check that fails or names no single label keeps the
    input and is counted as unchecked.

    With `out_dir`, accepted rows are appended to accepted.jsonl as they come, and
    the splits are written as train.jsonl, dev.jsonl (test.jsonl) at the end.

    Stops early, keeping what it has, when the budget runs out or the model fails
    many calls in a row. Raises ConfigError for a bad `n` or fraction, DataError
    when too few usable inputs were made (naming the counts)."""
    splits = ["train", "dev"] + (["test"] if test_fraction > 0 else [])
    if isinstance(n, bool) or not isinstance(n, int) or not len(splits) <= n <= MAX_EXAMPLES:
        raise ConfigError(
            f"examples: {n!r} examples; give a whole number from {len(splits)} to {MAX_EXAMPLES}",
            key="examples",
        )
    if not 0 < dev_fraction < 1 or not 0 <= test_fraction < 1 or dev_fraction + test_fraction >= 1:
        raise ConfigError("dev and test fractions must be in (0, 1) and leave room for train")
    check = label_check(check_labels)
    kept: list[Example] = []
    shingled: list[frozenset[str]] = []
    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    per_label: Counter[str] = Counter()
    tried: Counter[str] = Counter()
    disagreements = unchecked = 0
    stopped_by: str | None = None
    attempts = 0
    sink: IO[str] | None = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        sink = (out_dir / ACCEPTED).open("w", encoding="utf-8")
    try:
        while len(kept) < n and attempts < attempts_per_example * n:
            slot = _next_slot(draft, rng, per_label, tried, boundary_share)
            if slot.label is not None:
                tried[slot.label] += 1
            request = CompletionRequest(
                messages=(Message("user", _generation_prompt(draft, slot)),),
                temperature=temperature,
                max_tokens=max_tokens,
                seed=slot.seed,
                sample_index=attempts,
            )
            attempts += 1
            try:
                completion = client.complete(request)
            except (BudgetExhausted, ModelUnavailable) as e:
                attempts -= 1  # not made
                stopped_by = e.limit if isinstance(e, BudgetExhausted) else str(e)
                break
            except ModelError:
                dropped["model error"] += 1
                _progress(emit, len(kept), n, attempts, dropped)
                continue
            text, reason = read_generation(
                completion.text, draft, finished=completion.finish_reason != "length"
            )
            if text is not None:
                norm, grams = normalize(text), shingles(text)
                if norm in seen:
                    text, reason = None, "duplicate"
                elif any(jaccard(grams, other) >= near_threshold for other in shingled):
                    text, reason = None, "near duplicate"
            if text is None:
                dropped[reason] += 1
                _progress(emit, len(kept), n, attempts, dropped)
                continue
            seen.add(norm)
            shingled.append(grams)
            meta: dict[str, Any] = {}
            if slot.other is not None:
                meta["boundary"] = f"{slot.label}|{slot.other}"
            if check != "off" and draft.labels and slot.label is not None:
                try:
                    said = _classify(client, draft, text, slot.seed)
                except (BudgetExhausted, ModelUnavailable) as e:
                    said, stopped_by = None, e.limit if isinstance(e, BudgetExhausted) else str(e)
                if said is None:
                    unchecked += 1
                elif said != slot.label and check == "drop":
                    dropped[DISAGREES] += 1
                    _progress(emit, len(kept), n, attempts, dropped)
                    continue
                elif said != slot.label:
                    meta["model_label"] = said
                    disagreements += 1
            example = Example(
                f"synth-{len(kept):03d}",
                text,
                target=slot.label,
                choices=draft.labels or None,
                meta=meta,
            )
            kept.append(example)
            if slot.label is not None:
                per_label[slot.label] += 1
            if sink is not None:
                sink.write(_row(example) + "\n")
                sink.flush()
            _progress(emit, len(kept), n, attempts, dropped)
            if stopped_by:
                break
    finally:
        if sink is not None:
            sink.close()
    if len(kept) < len(splits):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "none"
        why = f"; stopped by {stopped_by}" if stopped_by else ""
        raise DataError(
            f"synth: {len(kept)} usable inputs from {attempts} generations "
            f"(dropped: {counts}{why}); need at least {len(splits)} for {', '.join(splits)}"
        )
    parts = split_examples(kept, rng, dev_fraction=dev_fraction, test_fraction=test_fraction)
    files: dict[str, Path] = {}
    if out_dir is not None:
        for name, examples in parts.items():
            path = out_dir / f"{name}.jsonl"
            write_atomic(path, "".join(_row(ex) + "\n" for ex in examples))
            files[name] = path
        (out_dir / ACCEPTED).unlink(missing_ok=True)
    return SynthResult(
        examples=tuple(kept),
        splits=parts,
        wanted=n,
        attempts=attempts,
        dropped=dict(dropped),
        stopped_by=stopped_by,
        label_disagreements=disagreements,
        labels_unchecked=unchecked,
        files=files,
    )


def label_check(value: object) -> LabelCheck:
    """`value` as a LabelCheck; ConfigError for anything else (a bool included)."""
    for mode in LABEL_CHECKS:
        if isinstance(value, str) and value == mode:
            return mode
    raise ConfigError(f"check_labels: {value!r}; expected one of off, record, drop")


def _classify(client: ModelClient, draft: TaskDraft, text: str, seed: int) -> str | None:
    prompt = fill(
        load_template("check_label.txt"),
        {"description": draft.description, "input": text, "labels": ", ".join(draft.labels)},
    )
    request = CompletionRequest(
        messages=(Message("user", prompt),), temperature=0.0, max_tokens=12, seed=seed
    )
    try:
        return model_label(client.complete(request).text, draft.labels)
    except ModelError:
        return None


def _progress(
    emit: EventSink | None, kept: int, wanted: int, attempts: int, dropped: Counter[str]
) -> None:
    if emit is not None:
        emit(SynthProgress(kept, wanted, attempts, sum(dropped.values())))


def split_examples(
    examples: Iterable[Example],
    rng: random.Random,
    *,
    dev_fraction: float,
    test_fraction: float = 0.0,
) -> dict[str, tuple[Example, ...]]:
    """Seeded split into train, dev (and test when `test_fraction` > 0), balanced by
    label: the examples of each label are shuffled and dealt in turn, so every prefix
    of the deal holds the labels in equal measure; test takes the first share, dev the
    next, train the rest. Every split gets at least one example."""
    groups: dict[str | None, list[Example]] = {}
    for ex in examples:
        groups.setdefault(ex.target, []).append(ex)
    for group in groups.values():
        rng.shuffle(group)
    dealt: list[Example] = []
    while any(groups.values()):
        for group in groups.values():
            if group:
                dealt.append(group.pop(0))
    total = len(dealt)
    n_test = max(1, round(total * test_fraction)) if test_fraction > 0 else 0
    n_dev = max(1, round(total * dev_fraction))
    n_dev = min(n_dev, total - n_test - 1)
    out = {
        "train": tuple(dealt[n_test + n_dev :]),
        "dev": tuple(dealt[n_test : n_test + n_dev]),
    }
    if test_fraction > 0:
        out["test"] = tuple(dealt[:n_test])
    return out


def _row(ex: Example) -> str:
    row: dict[str, Any] = {"id": ex.id, "input": ex.input}
    if ex.target is not None:
        row["target"] = ex.target
    if ex.choices:
        row["choices"] = list(ex.choices)
    row.update(ex.meta)
    return json.dumps(row, ensure_ascii=False)
