"""The web app in a real headless browser: Debian's chromium (installed by
scripts/browser.sh, which `make test` runs; never a browser download) driven by
Playwright, against `promptascent serve` started as a user starts it, on the scripted
models (allowed in tests only: PROMPTASCENT_TEST_BACKENDS=1, set by conftest.py and
inherited by the server and its workers). Screenshots go to the module's tmp folder
(`screenshots/`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from scripted import KEY
from web_support import TESTS, finished_run, scripted_task

from promptascent.preference.duel import Record
from promptascent.span_feedback import SpanComment
from promptascent.store.run_store import RunStore

CHROMIUM = Path("/usr/bin/chromium")
REBIND_NAME = "rebind.test"  # resolved to 127.0.0.1 by the browser: a DNS rebinding page
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    f"--host-resolver-rules=MAP {REBIND_NAME} 127.0.0.1",
]  # fmt: skip
WAIT_MS = 90_000

sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Server:
    root: Path
    port: int
    token: str
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def shot(self, page: object, name: str) -> None:
        folder = self.root / "screenshots"
        folder.mkdir(exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, *, delay: str) -> Server:
    """`promptascent serve` as a user starts it (default host), once it answers."""
    port = free_port()
    gate = str(root / "gate")  # while this file exists, optimizer calls wait
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PA_CALL_DELAY": delay, "PA_GATE": gate}
    process = subprocess.Popen(
        [sys.executable, "-m", "promptascent", "serve", "--port", str(port),
         "--runs-dir", str(root / "runs"), "--cache-dir", str(root / "cache")],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith(f"promptascent serve: http://127.0.0.1:{port}/#token="), first
    token = first.strip().rsplit("#token=", 1)[1]
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return Server(root, port, token, process)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "server did not start"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("web")
    finished_run(root)
    server = start_server(root, delay="0.05")
    yield server
    server.process.send_signal(signal.SIGINT)
    server.process.wait(60)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    assert CHROMIUM.is_file(), "no /usr/bin/chromium: run scripts/browser.sh (make test does)"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, server: Server) -> Iterator[object]:
    """A page that opened the address the server printed (so it holds the token)."""
    context = browser.new_context()  # type: ignore[attr-defined]
    context.set_default_timeout(WAIT_MS)
    p = context.new_page()
    p.goto(f"{server.url}/#token={server.token}")
    yield p
    context.close()


def stored(run_dir: Path) -> RunStore:
    return RunStore.open_existing(run_dir)


def test_the_run_list_and_a_run_page(page: sync_api.Page, server: Server) -> None:
    expect = sync_api.expect
    expect(page.locator("#runs a", has_text="first")).to_be_visible()
    assert "#token" not in page.url  # the token left the address bar
    server.shot(page, "run-list")
    page.click("#runs a >> text=first")
    page.wait_for_url(f"{server.url}/runs/first")
    expect(page.locator("#best pre")).to_have_text(KEY)
    expect(page.locator("#status")).to_have_text("finished")
    assert page.locator("#candidates tbody tr").count() >= 2
    server.shot(page, "run-page")
    page.click("text=full report")
    page.wait_for_url(f"{server.url}/runs/first/report")
    expect(page.locator("#verdict")).to_contain_text("beats the seed")
    assert page.locator("svg.plot circle").count() >= 2  # every candidate's score
    expect(page.locator("#example-table")).to_be_visible()
    server.shot(page, "report")


def test_a_run_started_in_the_browser_shows_candidates_as_they_come(
    page: sync_api.Page, server: Server
) -> None:
    expect = sync_api.expect
    page.fill("#task_file", str(scripted_task(server.root / "live-task")))
    page.fill("#run_id", "live")
    page.click("#start")
    page.wait_for_url(f"{server.url}/runs/live")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#candidates tbody tr").first).to_be_visible()
    server.shot(page, "live-first-candidate")
    expect(page.locator("#status")).to_have_text("finished")
    expect(page.locator("#best pre")).to_have_text(KEY)
    assert page.evaluate("window.notReloaded") is True  # updated live, not reloaded
    store = stored(server.runs / "live")
    try:
        assert page.locator("#candidates tbody tr").count() == len(store.candidates())
    finally:
        store.close()
    server.shot(page, "live-finished")


def test_a_run_stopped_in_the_browser_resumes_like_any_interrupted_run(
    page: sync_api.Page, server: Server
) -> None:
    expect = sync_api.expect
    gate = server.root / "gate"
    gate.touch()  # the run's optimizer calls wait: it cannot finish before Stop lands
    try:
        task = scripted_task(server.root / "stop-task")
        # another seed than the other runs': its optimizer calls are not in the cache
        task.write_text(task.read_text().replace("seed: 0\n", "seed: 1\n"))
        page.fill("#task_file", str(task))
        page.fill("#run_id", "stopped")
        page.click("#start")
        page.wait_for_url(f"{server.url}/runs/stopped")
        expect(page.locator("#candidates tbody tr").first).to_be_visible()  # the seed's
        page.click("#stop")
        expect(page.locator("#status")).to_have_text("interrupted")
    finally:
        gate.unlink()
    expect(page.locator("#worker")).to_have_text("worker: ended (exit 130)")
    server.shot(page, "stopped")
    resumed = subprocess.run(
        [sys.executable, "-m", "promptascent", "optimize", "--resume", "stopped",
         "--runs-dir", str(server.runs), "--cache-dir", str(server.root / "cache"), "-q"],
        cwd=server.root, env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    store = stored(server.runs / "stopped")
    try:
        assert store.get("status") == "finished" and store.get("resumes") == 1
        result = store.get("result")
        assert result["best_prompt"]["instruction"] == KEY
    finally:
        store.close()


def test_the_preference_loop_in_the_browser_stores_verdicts_as_prefer_does(
    page: sync_api.Page, server: Server
) -> None:
    expect = sync_api.expect
    page.fill("#p_task_file", str(scripted_task(server.root / "prefer-task")))
    page.fill("#from_run", "first")
    page.fill("#candidates", "2")
    page.fill("#rounds", "3")
    page.fill("#p_run_id", "duels")
    page.click("#prefer-start")
    page.wait_for_url(f"{server.url}/prefer/duels")
    expect(page.locator("#duel")).to_be_visible()
    shown = (page.text_content("#input"), page.text_content("#output-a"))
    server.shot(page, "duel")
    page.click("button[data-choice=A]")
    expect(page.locator("#progress")).to_have_text("1 verdicts this session")
    store = stored(server.runs / "duels")
    try:
        records = [Record.from_dict(r) for r in store.preferences()]
        assert len(records) == 1 and records[0].choice == "A"
        assert (records[0].input, records[0].output_a) == shown
        assert store.get("prefer_config")["from_run"] == str((server.runs / "first").resolve())
    finally:
        store.close()
    page.click("#pause")  # the session ends as a quit; it resumes with its verdicts
    expect(page.locator("#session")).to_have_text("session ended (quit)")
    page.click("#resume")
    expect(page.locator("#duel")).to_be_visible()
    expect(page.locator("#round")).to_have_text("2")
    page.click("button[data-choice=tie]")
    expect(page.locator("#progress")).to_have_text("1 verdicts this session")
    store = stored(server.runs / "duels")
    try:
        assert [r["choice"] for r in store.preferences()] == ["A", "tie"]
        assert store.get("resumes") == 1
    finally:
        store.close()


def test_span_feedback_in_the_browser_is_stored_and_refine_uses_it(
    page: sync_api.Page, server: Server
) -> None:
    expect = sync_api.expect
    store = stored(server.runs / "first")
    best = store.get("result")["best_candidate"]
    store.close()
    page.goto(f"{server.url}/runs/first/candidates/{best}")
    select = """([selector, start, end]) => {
        const box = document.querySelector(selector);
        const range = document.createRange();
        range.setStart(box.firstChild, start);
        range.setEnd(box.firstChild, end);
        document.getSelection().removeAllRanges();
        document.getSelection().addRange(range);
    }"""
    page.evaluate(select, ["#prompt-text", 0, 6])
    expect(page.locator("#selected")).to_contain_text(KEY[:6])
    page.fill("#comment", "say which animal exactly")
    page.click("#add-comment")
    expect(page.locator("#feedback-msg")).to_have_text("comment stored")
    output = page.locator("pre.output").first
    example_id = output.get_attribute("data-example")
    page.evaluate(select, ["pre.output", 0, 2])
    page.fill("#comment", "no first word")
    page.click("#add-comment")
    expect(page.locator("#comments li")).to_have_count(2)
    server.shot(page, "span-feedback")
    store = stored(server.runs / "first")
    try:
        comments = [SpanComment.from_dict(c) for c in store.span_comments(best)]
    finally:
        store.close()
    first = comments[0]
    assert (first.target, first.start, first.end, first.span, first.comment) == (
        "prompt", 0, 6, KEY[:6], "say which animal exactly"
    )  # fmt: skip
    assert comments[1].target == "output" and comments[1].example_id == example_id
    page.click("#refine")
    page.wait_for_url(f"{server.url}/runs/first-refined-*")
    expect(page.locator("#status")).to_have_text("finished")
    refined = server.runs / page.url.rsplit("/", 1)[1]
    store = stored(refined)
    try:
        origin = store.get("origin")
    finally:
        store.close()
    assert origin["refined_from"] == "first"
    assert origin["feedback"][0] == (
        f'Feedback on the prompt, about "{KEY[:6]}": say which animal exactly'
    )


def test_writes_without_the_token_are_refused(browser: object, server: Server) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(server.url)  # not the printed address: no token
        sync_api.expect(page.locator("#token-note")).to_contain_text("no token")
        page.fill("#task_file", str(scripted_task(server.root / "no-token-task")))
        page.click("#start")
        sync_api.expect(page.locator("#start-msg")).to_have_text("refused: a write needs the token")
        status = page.evaluate(
            """async () => (await fetch('/runs/first/stop', {method: 'POST',
                body: new URLSearchParams({token: 'guess'})})).status"""
        )
        assert status == 403
        server.shot(page, "refused")
    finally:
        context.close()
    assert not (server.runs / "no-token-task").exists()


def test_a_page_under_another_host_name_is_refused(browser: object, server: Server) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        response = page.goto(f"http://{REBIND_NAME}:{server.port}/")
        assert response is not None and response.status == 403
        assert "Host header" in page.content()
    finally:
        context.close()


def test_ctrl_c_at_the_server_stops_its_runs_resumably(tmp_path: Path) -> None:
    server = start_server(tmp_path, delay="0.3")
    try:
        task = scripted_task(tmp_path / "task")
        started = httpx.post(
            f"{server.url}/runs",
            headers={"X-Promptascent-Token": server.token},
            data={"task_file": str(task), "run_id": "long"},
            timeout=60,
        )
        assert started.status_code == 202, started.text
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(60) == 130  # as Ctrl-C ends every command
    finally:
        if server.process.poll() is None:
            server.process.kill()
    assert server.process.stdout is not None
    assert "the runs it was running are interrupted" in server.process.stdout.read()
    store = stored(tmp_path / "runs" / "long")
    try:
        assert store.get("status") == "interrupted"
    finally:
        store.close()
