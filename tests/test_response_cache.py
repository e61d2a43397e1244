"""ResponseCache: roundtrip, isolation, persistence, schema guard, threads, processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from promptascent.llm.cache import CacheError, ResponseCache
from promptascent.llm.types import Completion, TokenUsage

N_PROCS = 4
N_PER_PROC = 200


def _completion(text: str, finish: str = "stop") -> Completion:
    return Completion(text=text, finish_reason=finish, usage=TokenUsage(11, 7))


def test_roundtrip_marks_cached(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("k1", '{"req": 1}', _completion("héllo ✓", "length"))
        got = cache.get("k1")
    assert got == Completion("héllo ✓", "length", TokenUsage(11, 7), cached=True)


def test_miss_returns_none_and_stats(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert cache.get("absent") is None
        cache.put("k", "{}", _completion("x"))
        assert cache.get("k") is not None
        stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses, stats.puts) == (1, 1, 1, 1)


def test_key_isolation_and_replace(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("a", "{}", _completion("A"))
        cache.put("b", "{}", _completion("B"))
        cache.put("a", "{}", _completion("A2"))
        a, b = cache.get("a"), cache.get("b")
        assert a is not None and a.text == "A2"
        assert b is not None and b.text == "B"
        assert cache.stats().entries == 2


def test_persists_across_instances_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cache.sqlite"
    with ResponseCache(path) as cache:
        cache.put("k", "{}", _completion("kept"))
    with ResponseCache(path) as cache:
        got = cache.get("k")
    assert got is not None and got.text == "kept" and got.cached


def test_put_refuses_completion_without_text(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ValueError):
            cache.put("k", "{}", Completion(text=None))  # type: ignore[arg-type]
        assert cache.get("k") is None


def test_empty_text_is_cacheable(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("k", "{}", _completion(""))
        got = cache.get("k")
    assert got is not None and got.text == ""


def test_newer_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match=r"schema version 99"):
        ResponseCache(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CacheError, match=str(path.name)):
        ResponseCache(path)


def test_closed_cache_refuses_use(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.close()
    cache.close()
    with pytest.raises(CacheError):
        cache.get("k")


def test_threads_share_one_instance(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with ResponseCache(tmp_path / "c.sqlite") as cache:

        def work(t: int) -> None:
            try:
                for i in range(100):
                    cache.put(f"t{t}-{i}", "{}", _completion(f"{t}:{i}"))
                    got = cache.get(f"t{t}-{i}")
                    assert got is not None and got.text == f"{t}:{i}"
                    other = cache.get(f"t{(t + 1) % 8}-{i}")
                    assert other is None or other.text == f"{(t + 1) % 8}:{i}"
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert cache.stats().entries == 800


def _process_worker(path: str, wid: int, start: object, results: object) -> None:
    """Writes N_PER_PROC own entries, reading the others' as it goes."""
    try:
        start.wait(60)  # type: ignore[attr-defined]  # all start together
        seen = 0
        with ResponseCache(Path(path)) as cache:
            for i in range(N_PER_PROC):
                cache.put(f"p{wid}-{i}", f'{{"i": {i}}}', _completion(f"{wid}/{i}"))
                for other in range(N_PROCS):
                    got = cache.get(f"p{other}-{i}")
                    if got is not None:
                        if got.text != f"{other}/{i}":
                            raise AssertionError(f"wrong value for p{other}-{i}: {got}")
                        seen += 1
        results.put((wid, None, seen))  # type: ignore[attr-defined]
    except BaseException as exc:
        results.put((wid, f"{type(exc).__name__}: {exc}", 0))  # type: ignore[attr-defined]


@pytest.mark.timeout(180)
def test_processes_write_concurrently_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"  # not created beforehand: processes race to create it
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(N_PROCS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_process_worker, args=(str(path), w, start, results))
        for w in range(N_PROCS)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=150) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [err for _, err, _ in outcomes if err] == []
    # each process sees its own writes, and reads found other processes' writes
    assert all(seen >= N_PER_PROC for _, _, seen in outcomes)
    assert max(seen for _, _, seen in outcomes) > N_PER_PROC
    with ResponseCache(path) as cache:
        assert cache.stats().entries == N_PROCS * N_PER_PROC
        for w in range(N_PROCS):
            for i in range(N_PER_PROC):
                got = cache.get(f"p{w}-{i}")
                assert got is not None and got.text == f"{w}/{i}"
