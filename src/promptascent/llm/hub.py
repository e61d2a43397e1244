"""One run's models: every role's client wired once.

A `ModelHub` holds what the clients of one run (a search, an `eval`, the describe
steps, a preference session) share: the backends (built once per distinct spec by a
`BackendFactory`, or given as overrides), one usage meter, the shared response cache
and the run's journal. Each client it builds is a `ModelClient` on those, priced by
its role's spec and checked against a `BudgetGuard` made on the hub's meter. Entry
points ask the hub; none builds a factory, meter, cache or journal of its own.

Nothing is opened until `open()`: a hub built to estimate or to check a plan (which
needs backends only) touches no file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from promptascent.events import EventSink
from promptascent.llm.base import LLM
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.client import CachePolicy, ModelClient
from promptascent.llm.factory import BackendFactory
from promptascent.llm.journal import Journal
from promptascent.llm.prices import model_prices
from promptascent.llm.spec import ModelsSpec
from promptascent.llm.types import Role
from promptascent.llm.usage import UsageMeter

JOURNAL = "calls.sqlite"  # the run's journal of paid attempts, in its folder
RESPONSES = "responses.sqlite"  # the shared response cache, in the cache folder
EVALUATIONS = "evaluations.sqlite"  # the shared evaluation cache, in the cache folder


class ModelHub:
    """The models of one run. `models`: the spec of each role; `backends`: a backend
    to use for a role instead of building one (scripted models in tests); `cache_dir`:
    the shared caches' folder (None: no cache); `journal_dir`: the folder of the run's
    journal (None: no journal; a run folder always has one)."""

    def __init__(
        self,
        models: ModelsSpec,
        *,
        backends: Mapping[Role, LLM] | None = None,
        cache_dir: Path | None = None,
        cache_policy: CachePolicy = CachePolicy(),
        journal_dir: Path | None = None,
    ) -> None:
        self.models = models
        self.cache_dir = cache_dir
        self.cache_policy = cache_policy
        self.journal_dir = journal_dir
        self.meter = UsageMeter()
        self.cache: ResponseCache | None = None
        self.journal: Journal | None = None
        self._overrides = dict(backends or {})
        self._factory = BackendFactory()

    def open(self) -> ModelHub:
        """Opens the response cache (with a cache folder) and the journal (with a
        journal folder). StorageError naming the file when one cannot be opened."""
        try:
            if self.cache_dir is not None and self.cache is None:
                self.cache = ResponseCache(self.cache_dir / RESPONSES)
            if self.journal_dir is not None and self.journal is None:
                self.journal = Journal(self.journal_dir / JOURNAL)
        except BaseException:
            self.close()
            raise
        return self

    def backend(self, role: Role) -> LLM:
        """The backend serving `role`: the override given for it, else the one built
        from its spec (equal specs share one instance)."""
        if role in self._overrides:
            return self._overrides[role]
        return self._factory.get(getattr(self.models, role), role=role)

    def guard(self, budget: Budget, *, elapsed_before: float = 0.0) -> BudgetGuard:
        """A budget guard on this hub's meter (`Budget()`: no limits, for the
        measurements outside a search's budget)."""
        return BudgetGuard(budget, self.meter, elapsed_before=elapsed_before)

    def client(
        self, role: Role, guard: BudgetGuard, *, emit: EventSink | None = None
    ) -> ModelClient:
        """The client every call of `role` goes through: its backend, priced by its spec
        (the task file's prices, or LiteLLM's table: llm/prices.py), charged to the hub's
        meter within `guard`, with the shared cache (under the cache policy) and the
        journal, as far as they are open; `emit` gets a ModelCalled event per call (the
        run's event bus)."""
        spec = getattr(self.models, role)
        return ModelClient(
            role,
            self.backend(role),
            meter=self.meter,
            guard=guard,
            cache=self.cache,
            cache_policy=self.cache_policy,
            prices=model_prices(spec).prices,
            journal=self.journal,
            emit=emit,
        )

    @property
    def evaluation_cache_path(self) -> Path | None:
        """Where the shared evaluation cache is, when it is used: a cache folder and a
        policy that both reads and writes (a refreshing run measures afresh)."""
        policy = self.cache_policy
        if self.cache_dir is None or not (policy.read and policy.write):
            return None
        return self.cache_dir / EVALUATIONS

    def close(self) -> None:
        """Closes the journal, the cache and the backends built here (not overrides)."""
        try:
            if self.journal is not None:
                self.journal.close()
            if self.cache is not None:
                self.cache.close()
        finally:
            self.journal = self.cache = None
            self._factory.close()

    def __enter__(self) -> ModelHub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
