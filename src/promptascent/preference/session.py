"""A preference run: candidates, duels and verdicts recorded in a run folder.

Its models come from the run's model hub (llm/hub.py: every role's client on one meter,
the response cache and the run's call journal), as a search's do; with the evaluation
cache, the budget and the run store it drives `loop.run_preferences` with a chooser.

The run store holds the configuration ("prefer_config"), the candidates with their
lineage, every verdict as it is made (table `preferences`), the usage, and at the end
a summary ("prefer_summary": the ranking with win records). `best_prompt.txt`,
`best_prompt.json` (once there is a verdict) and `preferences.json` are written
atomically when a session ends.

A resumed session rebuilds everything from the store and replays the recorded
outputs (and the paraphrase requests) from the journal, so they count toward the
budget once, as they did, and no paid call is repeated. A session interrupted
(Ctrl-C) or failed is left with status "interrupted" or "failed" and resumes the
same way; one stopped before its candidates were all stored makes them on resume
as a start would (the paraphrases made before the stop come from the journal).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.config.task import TaskSpec, task_from_dict
from promptascent.data.example import Example
from promptascent.data.task_data import load_task_data
from promptascent.errors import ConfigError, StorageError
from promptascent.evaluation.cache import EvaluationCache
from promptascent.evaluation.evaluator import Evaluator, TaskParams
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import CachePolicy
from promptascent.metrics.base import Score
from promptascent.planning import seed_prompt_of
from promptascent.preference import candidates as sources
from promptascent.preference.duel import Record
from promptascent.preference.loop import Chooser, PreferenceOutcome, Standing, run_preferences
from promptascent.prompts.constraints import Constraints
from promptascent.prompts.export import export_prompt
from promptascent.prompts.prompt import Prompt
from promptascent.run_settings import RunSettings
from promptascent.search.pool import Candidate
from promptascent.store.files import write_atomic
from promptascent.store.run_folders import new_run_id
from promptascent.store.run_lock import RunLock
from promptascent.store.run_store import FILENAME, RunStore

KIND = "prefer"
CONFIG_KEY = "prefer_config"
SUMMARY_KEY = "prefer_summary"
CANDIDATES_KEY = "prefer_candidates"  # their ids, put once they are all stored


@dataclass(frozen=True)
class PreferResult:
    """The end of a preference session: the ranking with win records (best first),
    the candidates, how the session ended, and where the run is stored."""

    run_id: str
    run_dir: Path
    status: str  # finished | quit | budget | stopped (see PreferenceOutcome)
    stopped_by: str | None
    standings: tuple[Standing, ...]
    candidates: tuple[Candidate, ...]
    records: tuple[Record, ...]
    rounds: int
    usage: dict[str, dict[str, float]]
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> Standing:
        return self.standings[0]

    @property
    def best_prompt(self) -> Prompt:
        return self.candidate(self.best.candidate_id).prompt

    def candidate(self, candidate_id: str) -> Candidate:
        return next(c for c in self.candidates if c.id == candidate_id)

    @property
    def judged(self) -> int:
        return sum(1 for r in self.records if r.judged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "stopped_by": self.stopped_by,
            "rounds": self.rounds,
            "recorded": len(self.records),
            "judged": self.judged,
            "skipped": len(self.records) - self.judged,
            "best_candidate": self.best.candidate_id,
            "best_prompt": self.best_prompt.to_dict(),
            "ranking": [
                {**s.to_dict(), "instruction": self.candidate(s.candidate_id).prompt.instruction}
                for s in self.standings
            ],
            "usage": self.usage,
            "notes": list(self.notes),
        }


class _Unscored:
    """The Evaluator's metric in a preference run: a person judges the outputs, so
    nothing is scored and no label is needed."""

    name = "unscored"
    needs_target = False

    def score(self, output: str, example: Example) -> Score:
        return Score(0.0, parsed=True)


def start_preferences(
    task: TaskSpec,
    chooser: Chooser,
    *,
    from_run: Path | None = None,
    candidates: int = 4,
    rounds: int = 20,
    settings: RunSettings | None = None,
    run_id: str | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> PreferResult:
    """Starts a preference run on `task`: the `candidates` best of the run in folder
    `from_run`, or the seed prompt and `candidates - 1` paraphrases by the optimizer
    model; then up to `rounds` duels judged by `chooser`."""
    if candidates < 2:
        raise ConfigError(
            f"candidates {candidates}: preferences need 2 or more candidates", key="candidates"
        )
    if rounds < 1:
        raise ConfigError(f"rounds {rounds}: need 1 or more", key="rounds")
    settings = settings or RunSettings()
    run_id = run_id or new_run_id(task.name, KIND)
    run_dir = (settings.runs_dir / run_id).resolve()
    if (run_dir / FILENAME).exists():
        raise ConfigError(
            f"run {run_id} already exists in {settings.runs_dir}; "
            f"continue it with `promptascent prefer --resume {run_id}`"
        )
    source = _from_run(from_run, candidates) if from_run is not None else None
    config = {
        "kind": KIND,
        "task": json.loads(task.model_dump_json()),
        "base_dir": str(task.base_dir.resolve()),
        "from_run": str(from_run.resolve()) if from_run is not None else None,
        "candidates": candidates,
        "rounds": rounds,
        "settings": {
            "cache_dir": str(settings.cache_dir.resolve()) if settings.cache_dir else None,
            "cache_read": settings.cache_policy.read,
            "cache_write": settings.cache_policy.write,
        },
    }
    return _Session(task, config, settings, run_dir).run(chooser, source, on_record)


def _from_run(run_dir: Path, count: int) -> list[Candidate]:
    other = RunStore.open_existing(run_dir)
    try:
        return sources.from_run(other, count)
    finally:
        other.close()


def resume_preferences(
    run_dir: Path,
    chooser: Chooser,
    *,
    rounds: int | None = None,
    settings: RunSettings | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> PreferResult:
    """Continues a preference run from its folder with its own task, candidates and
    cache settings, up to `rounds` duels in all (default: the number it was started
    with). The recorded verdicts are kept; the duels that follow are the ones an
    uninterrupted run would have drawn."""
    store = RunStore.open_existing(run_dir)
    try:
        config = store.get(CONFIG_KEY)
    finally:
        store.close()
    if config is None:
        raise ConfigError(f"run {run_dir.name} is not a preference run (see `promptascent show`)")
    if rounds is not None:
        if rounds < 1:
            raise ConfigError(f"rounds {rounds}: need 1 or more", key="rounds")
        config = {**config, "rounds": rounds}
    task = task_from_dict(
        config["task"], base_dir=Path(config["base_dir"]), source=str(run_dir / FILENAME)
    )
    st = config["settings"]
    base = settings or RunSettings()
    resumed = RunSettings(
        runs_dir=run_dir.parent,
        cache_dir=Path(st["cache_dir"]) if st["cache_dir"] else None,
        cache_policy=CachePolicy(read=st["cache_read"], write=st["cache_write"]),
        backends=base.backends,
        sinks=base.sinks,
    )
    return _Session(task, config, resumed, run_dir.resolve(), resume=True).run(
        chooser, None, on_record
    )


class _Session:
    def __init__(
        self,
        task: TaskSpec,
        config: dict[str, Any],
        settings: RunSettings,
        run_dir: Path,
        *,
        resume: bool = False,
    ) -> None:
        self.task = task
        self.config = config
        self.settings = settings
        self.run_dir = run_dir
        self.resume = resume
        self.data = load_task_data(task)
        self.seed_prompt, kept = seed_prompt_of(task, self.data)
        self.examples = [*self.data.train, *self.data.dev]
        for ex in self.examples[:1]:  # fail now, not at the first duel
            self.seed_prompt.render(ex.fields, where=f"seed_prompt, example {ex.id}")
        self.protected = (*kept, *task.constraints.protected)
        self.budget = Budget.from_mapping(task.budget, where="budget")
        p = task.task_params
        self.params = TaskParams(p.temperature, p.max_tokens, task.seed, tuple(p.stop))
        # Every model of the session, with its journal in the run folder.
        self.hub = settings.hub(task.models, journal_dir=run_dir)
        self.meter = self.hub.meter

    def run(
        self,
        chooser: Chooser,
        source: list[Candidate] | None,
        on_record: Callable[[Record], None] | None,
    ) -> PreferResult:
        """Runs the session holding the run folder's lock (store/run_lock.py): while
        another live process works on the run, RunInUse, and nothing is touched."""
        with RunLock(self.run_dir):
            if not self.resume and (self.run_dir / FILENAME).exists():  # started meanwhile
                raise ConfigError(
                    f"run {self.run_dir.name} already exists in {self.run_dir.parent}; "
                    f"continue it with `promptascent prefer --resume {self.run_dir.name}`"
                )
            return self._run(chooser, source, on_record)

    def _run(
        self,
        chooser: Chooser,
        source: list[Candidate] | None,
        on_record: Callable[[Record], None] | None,
    ) -> PreferResult:
        store = RunStore(self.run_dir)
        try:
            self.hub.open()
            assert self.hub.journal is not None  # the hub has the run folder
            journal = self.hub.journal
            if self.resume:  # a damaged file stops the session before it changes anything
                store.check_integrity()
                journal.check_integrity()
        except BaseException:
            store.close()
            self.hub.close()
            raise
        elapsed_before = float(store.get("elapsed_seconds", 0.0)) if self.resume else 0.0
        guard = self.hub.guard(self.budget, elapsed_before=elapsed_before)
        eval_cache_path = self.hub.evaluation_cache_path
        eval_cache = EvaluationCache(eval_cache_path) if eval_cache_path else None
        if not self.resume:
            store.put(CONFIG_KEY, self.config)
        else:
            store.put("resumes", int(store.get("resumes", 0)) + 1)
            self.meter.carry_over(journal.carry_over())  # what earlier processes paid
        store.put("status", "running")
        notes: list[str] = []  # the data's notes are about splits: duels pool them
        try:
            task_model = self.hub.client("task", guard)
            evaluator = Evaluator(
                task_model, _Unscored(), params=self.params, concurrency=1, cache=eval_cache
            )
            made = self._candidates(store, source, guard, notes)
            if len(made) < 2:
                raise ConfigError(
                    f"only {len(made)} candidate(s): the optimizer model proposed no usable "
                    f"paraphrase ({'; '.join(notes[-1:]) or 'no reply'}); use --run RUN"
                )
            history = [Record.from_dict(r) for r in store.preferences()]
            if self.resume:
                self._replay(evaluator, made, history)

            def record(r: Record) -> None:
                store.add_preference(r.to_dict())
                store.put("elapsed_seconds", guard.elapsed_seconds)
                if on_record is not None:
                    on_record(r)

            outcome = run_preferences(
                [(c.id, c.prompt) for c in made],
                self.examples,
                evaluator,
                chooser,
                rounds=int(self.config["rounds"]),
                seed=self.task.seed,
                history=history,
                on_record=record,
            )
            return self._finish(store, outcome, made, notes)
        except BaseException as e:
            # Best effort: on a full disk these writes fail too, and the error to report
            # is the one that stopped the session.
            with suppress(StorageError):
                store.put("status", "interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
                store.set_usage(self.meter.to_dict())
            raise
        finally:
            with suppress(StorageError):
                store.put("elapsed_seconds", guard.elapsed_seconds)
            store.close()
            self.hub.close()

    def _candidates(
        self,
        store: RunStore,
        source: list[Candidate] | None,
        guard: BudgetGuard,
        notes: list[str],
    ) -> list[Candidate]:
        """The run's candidates: recorded ones on a resume (the paraphrase requests
        replayed from the journal for the budget), else `source` or new paraphrases.
        A resumed run stopped before its candidates were all stored (no
        CANDIDATES_KEY; in a store older than it, no verdict) makes them anew."""
        if self.resume and (store.get(CANDIDATES_KEY) is not None or store.preferences()):
            made = [
                Candidate(
                    Prompt.from_dict(c["prompt"]),
                    tuple(c["parents"]),
                    c["operation"],
                    c["step"],
                    note=c["note"],
                )
                for c in store.candidates()
            ]
            if self.config["from_run"] is None:
                self._propose(guard)  # journal hits: accounting only
            return made
        if self.resume and self.config["from_run"] is not None:
            source = _from_run(Path(self.config["from_run"]), int(self.config["candidates"]))
        if source is None:
            proposals = self._propose(guard)
            source = list(proposals.candidates)
            if proposals.rejected:
                notes.append(
                    f"{len(proposals.rejected)} optimizer replies not used: "
                    + ", ".join(sorted(set(proposals.rejected)))
                )
            if proposals.stopped_by:
                notes.append(f"paraphrases stopped by the budget ({proposals.stopped_by})")
        for c in source:
            store.add_candidate(c.record())  # a candidate stored before a resume is not added again
        store.put(CANDIDATES_KEY, [c.id for c in source])
        return source

    def _propose(self, guard: BudgetGuard) -> sources.Proposals:
        model = self.hub.client("optimizer", guard)
        constraints = Constraints(
            protected=self.protected,
            max_prompt_tokens=self.task.constraints.max_prompt_tokens,
            keep_output_format=self.task.constraints.keep_output_format,
            seed_output_format=self.seed_prompt.output_format,
            count_tokens=self.hub.backend("task").count_tokens,
        )
        return sources.paraphrases(
            self.seed_prompt,
            model,
            int(self.config["candidates"]),
            seed=self.task.seed,
            constraints=constraints,
        )

    def _replay(self, evaluator: Evaluator, made: list[Candidate], history: list[Record]) -> None:
        """Asks again for the recorded outputs: answered by the journal (or the caches),
        they count toward the budget as the calls they were, and cost nothing."""
        prompts = {c.id: c.prompt for c in made}
        examples = {ex.id: ex for ex in self.examples}
        for r in history:
            ex = examples.get(r.example_id)
            if r.error is not None or ex is None:
                continue
            for cid in (r.candidate_a, r.candidate_b):
                if cid in prompts:
                    evaluator.run_one(prompts[cid], ex)

    def _finish(
        self,
        store: RunStore,
        outcome: PreferenceOutcome,
        made: list[Candidate],
        notes: list[str],
    ) -> PreferResult:
        result = PreferResult(
            run_id=self.run_dir.name,
            run_dir=self.run_dir,
            status=outcome.status,
            stopped_by=outcome.stopped_by,
            standings=outcome.standings,
            candidates=tuple(made),
            records=outcome.records,
            rounds=int(self.config["rounds"]),
            usage=self.meter.to_dict(),
            notes=tuple(notes),
        )
        best = result.best_prompt
        text = export_prompt(best, "messages" if best.system or best.demos else "text")
        summary = result.to_dict()
        if result.judged:  # no verdict, no best prompt
            write_atomic(self.run_dir / "best_prompt.txt", text + "\n")
            write_atomic(self.run_dir / "best_prompt.json", export_prompt(best, "json") + "\n")
        write_atomic(self.run_dir / "preferences.json", json.dumps(summary, indent=2) + "\n")
        store.set_usage(result.usage)
        store.put(SUMMARY_KEY, summary)
        store.put("status", result.status)
        return result
