"""A run: a task, one optimizer, a budget; recorded in a run store.

`Runner` wires the parts (data, metric, models in their roles, caches, budget,
evaluator, optimizer, run store), runs the search, then scores the seed prompt and
the winner on the held-out test split and compares them.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.data.example import Dataset, Example
from promptascent.data.task_data import TaskData
from promptascent.errors import ConfigError, ModelUnavailable, StorageError

# Re-exported: the dry-run estimate was part of this module.
from promptascent.estimate import RunEstimate as RunEstimate
from promptascent.estimate import estimate as estimate
from promptascent.evaluation.baseline import majority_rate
from promptascent.evaluation.cache import EvaluationCache
from promptascent.evaluation.evaluator import Evaluator
from promptascent.evaluation.result import EvaluationResult, compare
from promptascent.evaluation.scoring import ScoringChoice
from promptascent.evaluation.stats import PairedComparison
from promptascent.events import (
    BudgetSpent,
    CandidateEvaluated,
    CandidateProposed,
    Event,
    EventBus,
    EventSink,
    ExampleScored,
    ModelCalled,
    PhaseStarted,
    RunFinished,
    RunResumed,
    RunStarted,
)
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import CachePolicy, ModelClient
from promptascent.llm.hub import JOURNAL as JOURNAL
from promptascent.llm.journal import Journal
from promptascent.llm.types import ROLES
from promptascent.llm.usage import UsageMeter
from promptascent.metrics.base import Metric
from promptascent.metrics.judge import JudgeStats
from promptascent.optimizers.base import OptimizerContext, OptimizerOutcome

# Re-exported: these were defined here.
from promptascent.planning import Plan as Plan
from promptascent.planning import plan as plan
from promptascent.planning import seed_prompt_of as seed_prompt_of
from promptascent.prompts.export import export_prompt
from promptascent.prompts.prompt import Prompt
from promptascent.report import Report, run_report
from promptascent.report.rows import candidate_rows, to_dataframe
from promptascent.report.run_facts import read_run
from promptascent.run_settings import DEFAULT_CACHE_DIR as DEFAULT_CACHE_DIR
from promptascent.run_settings import DEFAULT_RUNS_DIR as DEFAULT_RUNS_DIR
from promptascent.run_settings import RunSettings as RunSettings
from promptascent.search.objective import LengthPenalty, prompt_tokens
from promptascent.search.pool import Candidate, CandidatePool
from promptascent.search.splits import CV, DEV, TEST, TRAIN
from promptascent.store.files import write_atomic
from promptascent.store.run_folders import new_run_id, recorded
from promptascent.store.run_lock import RunLock
from promptascent.store.run_store import EXAMPLES_KEY, FILENAME, RunStore
from promptascent.tracking import Tracking, check_trackers


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: str  # "finished" or "budget" (the search stopped on a limit)
    seed: Candidate
    best: Candidate
    selection_split: str
    stopped_by: str | None
    test_seed: EvaluationResult | None
    test_best: EvaluationResult | None
    comparison: PairedComparison | None
    usage: dict[str, dict[str, float]]
    search_usage: dict[str, dict[str, float]]
    candidates: int
    rejected_replies: int
    wall_seconds: float
    notes: tuple[str, ...]
    majority_rate: float | None
    lineage: tuple[dict[str, Any], ...] = ()
    train_dev_gap: dict[str, float] | None = None
    confidence: float = 0.95
    judge: dict[str, Any] | None = None  # what the judge model did (JudgeStats), if used
    prompt_tokens: dict[str, int] | None = None  # "seed", "best": without an input
    length_penalty: float = 0.0
    scoring: str = "generate"  # ScoringChoice.describe(): how outputs were scored
    # No final selection ran: the budget only allowed screening, so the winner was
    # chosen on the screening scores (fewer dev examples; see OptimizerOutcome).
    screening_only: bool = False

    @property
    def best_prompt(self) -> Prompt:
        return self.best.prompt

    def report(self) -> Report:
        """The run's report (promptascent.report.run_report), from its run store."""
        return run_report(self.run_dir)

    def _repr_html_(self) -> str:
        """The report, in a notebook cell (Jupyter calls this)."""
        return self.report().html_fragment()

    def candidate_rows(self) -> list[dict[str, Any]]:
        """Every candidate of the run as a dict (report/rows.py: candidate_rows)."""
        return candidate_rows(read_run(self.run_dir))

    def to_dataframe(self) -> Any:
        """`candidate_rows()` as a pandas DataFrame; ImportError without pandas."""
        return to_dataframe(self.candidate_rows())

    def to_dict(self) -> dict[str, Any]:
        def ev(e: EvaluationResult | None) -> dict[str, Any] | None:
            if e is None:
                return None
            return {
                **e.summary(self.confidence),
                "predictions": dict(e.predictions().most_common(10)),
            }

        cmp = self.comparison
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "stopped_by": self.stopped_by,
            "seed_candidate": self.seed.id,
            "best_candidate": self.best.id,
            "best_prompt": self.best.prompt.to_dict(),
            "best_lineage": list(self.lineage),
            "train_dev_gap": self.train_dev_gap,
            "confidence": self.confidence,
            "prompt_tokens": self.prompt_tokens,
            "length_penalty": self.length_penalty,
            "scoring": self.scoring,
            "selection_split": self.selection_split,
            "selection_scores": {
                "seed": self.seed.score(self.selection_split),
                "best": self.best.score(self.selection_split),
            },
            "selection_examples": _examples(self.best, self.selection_split),
            "screening_only": self.screening_only,
            "test": {
                "seed": ev(self.test_seed),
                "best": ev(self.test_best),
                "difference": None
                if cmp is None
                else {
                    "mean": cmp.mean_diff,
                    "ci_low": cmp.low,
                    "ci_high": cmp.high,
                    "n": cmp.n,
                    "wins": cmp.wins,
                    "losses": cmp.losses,
                    "ties": cmp.ties,
                    "p_value": cmp.p_value,
                },
                "majority_rate": self.majority_rate,
            },
            "usage": self.usage,
            "search_usage": self.search_usage,
            "candidates": self.candidates,
            "rejected_replies": self.rejected_replies,
            "wall_seconds": self.wall_seconds,
            "notes": list(self.notes),
            "judge": self.judge,
        }


def _run_id_in_use(run_dir: Path, runs_dir: Path) -> ConfigError:
    """The error for a new run whose folder holds a recorded run: choose another id, or
    continue that run, from the shell or from Python."""
    return ConfigError(
        f"run {run_dir.name} already exists in {runs_dir}: choose another run id, "
        f"or, if it was interrupted, continue it with `promptascent optimize --resume "
        f"{run_dir.name} --runs-dir {run_dir.parent}` (in Python: "
        f"promptascent.resume({str(run_dir)!r}))"
    )


class Runner:
    """Runs a plan. `run_id` names the run folder (default: time, task, optimizer);
    `resume` continues the run already recorded there (see `resume_run`)."""

    def __init__(
        self,
        plan: Plan,
        settings: RunSettings | None = None,
        *,
        run_id: str | None = None,
        resume: bool = False,
    ) -> None:
        self.plan = plan
        self.settings = settings or RunSettings()
        check_trackers(self.settings.trackers)
        self.resuming = resume
        self.run_id = run_id or new_run_id(plan.task.name, plan.optimizer.name)
        self.run_dir = (self.settings.runs_dir / self.run_id).resolve()
        # Every model of the run, with its journal in the run folder.
        self.hub = self.settings.hub(plan.task.models, journal_dir=self.run_dir)
        self.meter = self.hub.meter
        self.bus = EventBus(follow_up=_Spending(self.meter, plan.budget))
        for sink in self.settings.sinks:
            self.bus.subscribe(sink)
        if not resume and recorded(self.run_dir):
            raise _run_id_in_use(self.run_dir, self.settings.runs_dir)
        self.judge_stats = JudgeStats()
        self.scoring = ScoringChoice(None, "accuracy")  # set from the task model at run()
        # Where the run came from (refinement.py: the earlier run and the feedback given).
        self.origin: dict[str, Any] | None = None

    def _bound_metric(self, judge: ModelClient) -> Metric:
        """The plan's metric; one that asks a model (the judge metric) bound to `judge`,
        counting into the run's judge statistics."""
        bind = getattr(self.plan.metric, "bind", None)
        return bind(judge, self.judge_stats) if callable(bind) else self.plan.metric

    def run(self) -> RunResult:
        """Runs the plan in the run folder, holding the folder's lock from start to end
        (store/run_lock.py): while another live process works on the run, RunInUse, and
        nothing in the folder is touched."""
        # The user's metric code, imported now: nothing is recorded or spent yet, and
        # a module that cannot load leaves no run folder behind.
        self.plan.load_code()
        with RunLock(self.run_dir):
            if not self.resuming and recorded(self.run_dir):  # started meanwhile
                raise _run_id_in_use(self.run_dir, self.settings.runs_dir)
            with ExitStack() as files:
                return self._run(files)

    def _run(self, files: ExitStack) -> RunResult:
        started = time.monotonic()
        p = self.plan
        hub = self.hub
        files.callback(hub.close)
        store = RunStore(self.run_dir)
        files.callback(store.close)
        pool = CandidatePool(emit=self.bus)
        # Every reply this run pays for is journaled in its folder, caches on or off:
        # a resumed run replays them and repeats no paid call.
        hub.open()
        assert hub.journal is not None  # the hub has the run folder
        journal = hub.journal
        eval_cache_path = hub.evaluation_cache_path
        eval_cache = EvaluationCache(eval_cache_path) if eval_cache_path else None
        # Every file opened: one that cannot be read has stopped the resume before it
        # clears what it re-derives.
        elapsed_before = 0.0
        if self.resuming:
            store.check_integrity()
            journal.check_integrity()
            elapsed_before = float(store.get("elapsed_seconds", 0.0))
            store.clear_derived()
            store.put("resumes", int(store.get("resumes", 0)) + 1)
            # What the earlier processes paid stays paid: model_calls and spent_dollars
            # go on from the journal, and its replies replay as those paid calls.
            self.meter.carry_over(journal.carry_over())
        guard = hub.guard(p.budget, elapsed_before=elapsed_before)
        self.bus.subscribe(_StoreWriter(store, pool, guard))
        tracking = Tracking(
            self.settings.trackers,
            run_id=self.run_id,
            run_dir=self.run_dir,
            config=self._config(),
            seed_prompt=export_prompt(
                p.seed_prompt, "messages" if p.seed_prompt.system or p.seed_prompt.demos else "text"
            ),
            resumed=self.resuming,
            bus=self.bus,
            models={r: b.info.model_id for r, b in self.settings.backends.items()},
        )
        self.bus.subscribe(files.enter_context(tracking))
        if not self.resuming:
            store.put("config", self._config())
            if self.origin is not None:
                store.put("origin", self.origin)
        # The inputs and expected answers of the examples the report shows beside the
        # outputs: the report reads the run store only (promptascent.report).
        store.put(EXAMPLES_KEY, _examples_to_record(p.data))
        origin = store.get("origin")
        store.put("status", "running")
        try:
            clients = {r: hub.client(r, guard, emit=self.bus) for r in ROLES}
            self.scoring = p.scoring(clients["task"].backend.info)
            if p.task.length_penalty:
                task_client = clients["task"]
                pool.penalty = LengthPenalty(
                    p.task.length_penalty,
                    lambda prompt: prompt_tokens(task_client, prompt),
                    p.seed_prompt,
                )
            evaluator = Evaluator(
                clients["task"],
                self._bound_metric(clients["judge"]),
                params=p.task_params,
                concurrency=p.task.evaluation.concurrency,
                cache=eval_cache,
                emit=self.bus,
                likelihood=self.scoring.likelihood,
                select_by=self.scoring.select_by,
            )
            ctx = OptimizerContext(
                seed_prompt=p.seed_prompt,
                train=p.data.train,
                dev=p.data.dev,
                evaluator=evaluator,
                optimizer_model=clients["optimizer"],
                judge_model=clients["judge"],
                rng=random.Random(p.task.seed),
                guard=guard,
                emit=self.bus,
                pool=pool,
                task_description=p.task.description or p.data.description,
                constraints=p.constraints(hub.backend("task").count_tokens),
                requirements=p.task.requirements,
                judge_stats=self.judge_stats,
            )
            self.bus(RunStarted(self.run_id, p.optimizer.name))
            if self.resuming:
                self.bus(RunResumed(self.run_id, int(store.get("resumes", 1))))
            seed_candidate, _ = pool.propose(Candidate(p.seed_prompt, operation="seed"))
            planned = p.optimizer.estimate(len(p.data.train), len(p.data.dev), 0).task_calls
            self.bus(PhaseStarted("search", planned))
            outcome = p.optimizer.optimize(ctx)
            search_usage = self.meter.to_dict()
            test_seed = test_best = comparison = gap = None
            notes = list(p.data.notes)
            if self.scoring.note:
                notes.append(self.scoring.note)
            if origin:
                notes.append(
                    f"refined from run {origin['refined_from']} (its best "
                    f"{origin['best_candidate']}) with: " + " | ".join(origin["feedback"])
                )
            report = self._report_evaluator(eval_cache)
            try:
                gap = self._train_dev_gap(pool, report, outcome)
                if p.data.test is not None and p.task.evaluation.test:
                    test_seed, test_best, comparison = self._test(
                        pool, report, outcome, seed_candidate, p.data.test
                    )
            except ModelUnavailable as e:
                notes.append(f"no test scores: {e}")
            notes.extend(_payment_notes(self.meter.to_dict(), journal))
            judge = self.judge_stats.to_dict() if self.judge_stats.calls else None
            if judge is not None:
                store.put("judge", judge)
                notes.extend(self.judge_stats.warnings())
            result = RunResult(
                run_id=self.run_id,
                run_dir=self.run_dir,
                status=_status(outcome.stopped_by),
                seed=seed_candidate,
                best=outcome.best,
                selection_split=outcome.selection_split,
                stopped_by=outcome.stopped_by,
                test_seed=test_seed,
                test_best=test_best,
                comparison=comparison,
                usage=self.meter.to_dict(),
                search_usage=search_usage,
                candidates=len(pool),
                rejected_replies=outcome.rejected_replies,
                wall_seconds=time.monotonic() - started,
                notes=tuple(notes),
                majority_rate=_majority_rate(p.data.test),
                lineage=_lineage(pool, outcome.best, outcome.selection_split),
                train_dev_gap=gap,
                confidence=p.task.evaluation.confidence,
                judge=judge,
                prompt_tokens={
                    "seed": prompt_tokens(clients["task"], seed_candidate.prompt),
                    "best": prompt_tokens(clients["task"], outcome.best.prompt),
                },
                length_penalty=p.task.length_penalty,
                scoring=self.scoring.describe(),
                screening_only=outcome.screening_only,
            )
            self._write_outputs(store, result)
            self.bus(RunFinished(self.run_id, result.status, result.best.id))
            return result
        except BaseException as e:
            # Best effort: on a full disk these writes fail too, and the error to report
            # is the one that stopped the run.
            with suppress(StorageError):
                store.put("status", "interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
                store.set_usage(self.meter.to_dict())
                best = pool.best(DEV)
                if best is not None:
                    write_atomic(
                        self.run_dir / "best_prompt.json", export_prompt(best.prompt, "json") + "\n"
                    )
            raise
        finally:
            with suppress(StorageError):
                store.put("elapsed_seconds", guard.elapsed_seconds)

    def _config(self) -> dict[str, Any]:
        """What `resume_run` needs to rebuild this run's plan and settings."""
        p, st = self.plan, self.settings
        return {
            "task": json.loads(p.task.model_dump_json()),
            "base_dir": str(p.task.base_dir.resolve()),
            "optimizer": {"name": p.optimizer.name, "options": p.optimizer.config.model_dump()},
            "budget": p.budget.limits(),
            "settings": {
                "cache_dir": str(st.cache_dir.resolve()) if st.cache_dir else None,
                "cache_read": st.cache_policy.read,
                "cache_write": st.cache_policy.write,
                "trackers": list(st.trackers),
            },
        }

    def _report_evaluator(self, eval_cache: EvaluationCache | None) -> Evaluator:
        """The evaluator of the measurements after the search (train-dev gap, test):
        outside the search budget, which bounds the search; this measures its result."""
        unbounded = self.hub.guard(Budget())
        return Evaluator(
            self.hub.client("task", unbounded, emit=self.bus),
            self._bound_metric(self.hub.client("judge", unbounded, emit=self.bus)),
            params=self.plan.task_params,
            concurrency=self.plan.task.evaluation.concurrency,
            cache=eval_cache,
            emit=self.bus,
            likelihood=self.scoring.likelihood,
            select_by=self.scoring.select_by,
        )

    @staticmethod
    def _measure(
        pool: CandidatePool,
        evaluator: Evaluator,
        cand: Candidate,
        split: str,
        examples: list[Example],
    ) -> EvaluationResult:
        result = evaluator.evaluate(cand.prompt, examples)
        pool.record(cand, split, result)
        return result

    def _train_dev_gap(
        self, pool: CandidatePool, evaluator: Evaluator, outcome: OptimizerOutcome
    ) -> dict[str, float] | None:
        """The winner's score on train examples against its selection score: a large gap
        means the search fit the examples it learned from."""
        n = self.plan.task.evaluation.train_gap_examples
        selected = outcome.best.score(outcome.selection_split)
        if not n or selected is None or outcome.selection_split == CV:
            # k-fold: every train example was also a selection example
            return None
        examples = list(self.plan.data.train)[:n]
        self.bus(PhaseStarted(TRAIN, len(examples)))
        train = self._measure(pool, evaluator, outcome.best, TRAIN, examples)
        return {
            "train": train.mean,
            "selection": selected,
            "gap": train.mean - selected,
            "n_train": train.n,
        }

    def _test(
        self,
        pool: CandidatePool,
        evaluator: Evaluator,
        outcome: OptimizerOutcome,
        seed: Candidate,
        test: Dataset,
    ) -> tuple[EvaluationResult, EvaluationResult, PairedComparison]:
        """Scores seed and winner on the held-out test split and compares them."""
        n = len(test) * (1 if outcome.best is seed else 2)
        self.bus(PhaseStarted(TEST, n))
        results = {
            cand.id: self._measure(pool, evaluator, cand, TEST, list(test))
            for cand in {seed.id: seed, outcome.best.id: outcome.best}.values()
        }
        base, best = results[seed.id], results[outcome.best.id]
        ev = self.plan.task.evaluation
        return base, best, compare(base, best, seed=self.plan.task.seed, confidence=ev.confidence)

    def _write_outputs(self, store: RunStore, result: RunResult) -> None:
        """The files first, the final status last: a run killed in between is still
        "running" in its store, so it can be resumed (and finishes identically)."""
        best = result.best.prompt
        text = export_prompt(best, "messages" if best.system or best.demos else "text")
        write_atomic(self.run_dir / "best_prompt.txt", text + "\n")
        write_atomic(self.run_dir / "best_prompt.json", export_prompt(best, "json") + "\n")
        write_atomic(self.run_dir / "result.json", json.dumps(result.to_dict(), indent=2) + "\n")
        store.set_usage(result.usage)
        store.put("result", result.to_dict())
        store.put("status", result.status)


class _StoreWriter:
    """Writes candidates, evaluations and events to the run store as they happen."""

    def __init__(self, store: RunStore, pool: CandidatePool, guard: BudgetGuard) -> None:
        self.store = store
        self.pool = pool
        self.guard = guard

    def __call__(self, event: Event) -> None:
        if isinstance(event, (ExampleScored, ModelCalled)):
            return
        if isinstance(event, BudgetSpent) and event.after != "CandidateEvaluated":
            return  # the spending at each evaluation is kept; per example is too much
        if isinstance(event, CandidateProposed):
            self.store.add_candidate(self.pool.get(event.candidate_id).record())
        elif isinstance(event, CandidateEvaluated):
            cand = self.pool.get(event.candidate_id)
            self.store.add_evaluation(cand.id, event.split, cand.evaluations[event.split].record())
            self.store.put("elapsed_seconds", self.guard.elapsed_seconds)
        self.store.add_event(event.ts, event.kind, event.to_dict())


class _Spending:
    """The bus's follow-up (EventBus): after each scored example and each candidate
    evaluation, what the run has spent so far against its call and dollar limits (for
    the live progress, and stored after each evaluation for the report's plot)."""

    _LIMITS = ("calls", "task_calls", "dollars")

    def __init__(self, meter: UsageMeter, budget: Budget) -> None:
        self.meter = meter
        limits = budget.limits()
        self.limits = {k: float(limits[k]) for k in self._LIMITS if k in limits}

    def __call__(self, event: Event) -> Event | None:
        if not isinstance(event, (ExampleScored, CandidateEvaluated)):
            return None
        usage = self.meter.snapshot()
        return BudgetSpent(
            after=event.kind,
            calls=sum(u.calls for u in usage.values()),
            task_calls=usage["task"].calls,
            dollars=sum(u.dollars for u in usage.values()),
            limits=dict(self.limits),
        )


def _examples_to_record(data: TaskData) -> dict[str, list[dict[str, Any]]]:
    """Each dev and test example's id, input text, expected answer and choices, by
    split."""
    out: dict[str, list[dict[str, Any]]] = {}
    for split, ds in ((DEV, data.dev), (TEST, data.test)):
        if ds is not None and len(ds):
            out[split] = [
                {
                    "id": ex.id,
                    "input": ex.input_text,
                    "target": ex.target,
                    "choices": list(ex.choices) if ex.choices else None,
                }
                for ex in ds
            ]
    return out


def _lineage(pool: CandidatePool, best: Candidate, split: str) -> tuple[dict[str, Any], ...]:
    """The winner and its ancestors, winner first: how it was made and how each scored."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    todo = [best.id]
    while todo:
        cid = todo.pop(0)
        if cid in seen or cid not in pool:
            continue
        seen.add(cid)
        c = pool.get(cid)
        scores = {k: v.mean for k, v in c.evaluations.items() if v.n}
        chain.append(
            {
                "id": cid,
                "operation": c.operation,
                "step": c.step,
                "parents": list(c.parents),
                "note": c.note,
                "scores": scores,
            }
        )
        todo.extend(c.parents)
    return tuple(chain)


def _payment_notes(usage: dict[str, dict[str, float]], journal: Journal) -> list[str]:
    """What the run paid for beyond its replies, and usage servers reported beyond
    what was asked (metered as reported)."""
    notes = []
    for role, u in usage.items():
        if u["failed_attempts"]:
            notes.append(
                f"{int(u['failed_attempts'])} paid {role}-model attempts gave no usable "
                "reply (timeouts, unusable or oversize replies); each was metered as the "
                "server reported it or at its call's worst case"
            )
    anomalies = journal.anomalies()
    for role in dict.fromkeys(r for r, _ in anomalies):
        mine = [text for r, text in anomalies if r == role]
        notes.append(
            f"the {role} model's server reported usage beyond the request's limits "
            f"{len(mine)} times (first: {mine[0]}); the reported usage was metered"
        )
    return notes


def _majority_rate(test: Dataset | None) -> float | None:
    if test is None or not test.labelled or not len(test):
        return None
    return majority_rate([ex.target for ex in test], [ex.choices for ex in test])


def _examples(candidate: Candidate, split: str) -> int | None:
    """How many examples the candidate's evaluation on `split` holds (None: none)."""
    ev = candidate.evaluations.get(split)
    return None if ev is None else len(ev.results)


def _status(stopped_by: str | None) -> str:
    if stopped_by is None:
        return "finished"
    return "stopped" if "unavailable" in stopped_by else "budget"


def resume_run(
    run_dir: Path, *, sinks: list[EventSink] | None = None, trackers: tuple[str, ...] = ()
) -> RunResult:
    """Continues a run that was interrupted (killed, Ctrl-C, crashed) from its folder:
    the same task, options, budget, seed and cache settings. The search is replayed
    from the run's journal and the caches, which hold every reply it was given, so no
    finished call is paid for again; then it goes on from where it stopped. With the
    same seed the result equals that of an uninterrupted run (on deterministic models).
    The run's trackers go on, with any `trackers` added."""
    store = RunStore.open_existing(run_dir)
    try:
        config, status = store.get("config"), store.get("status")
        prefer_config = store.get("prefer_config")  # preference/session.py CONFIG_KEY
    finally:
        store.close()
    if config is None:
        if prefer_config is not None:
            raise ConfigError(
                f"run {run_dir.name} is a preference run; continue it with "
                f"`promptascent prefer --resume {run_dir.name}`"
            )
        raise ConfigError(f"{run_dir}: the run recorded no configuration; start it again")
    if status in ("finished", "budget", "stopped"):
        raise ConfigError(f"run {run_dir.name} already ended ({status}); see `promptascent show`")
    from promptascent.config.task import task_from_dict

    task = task_from_dict(
        config["task"], base_dir=Path(config["base_dir"]), source=f"{run_dir / FILENAME}"
    )
    p = plan(
        task,
        optimizer=config["optimizer"]["name"],
        optimizer_options=config["optimizer"]["options"],
        budget=Budget.from_mapping(config["budget"]),
    )
    st = config["settings"]
    settings = RunSettings(
        runs_dir=run_dir.parent,
        cache_dir=Path(st["cache_dir"]) if st["cache_dir"] else None,
        cache_policy=CachePolicy(read=st["cache_read"], write=st["cache_write"]),
        sinks=list(sinks or []),
        trackers=tuple(dict.fromkeys([*st.get("trackers", []), *trackers])),
    )
    return Runner(p, settings, run_id=run_dir.name, resume=True).run()
