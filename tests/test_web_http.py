"""The web app's rules over plain HTTP (Starlette's TestClient): who may read and
write, the Host check, escaping, and what the write routes check and store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient
from web_support import finished_run, scripted_task

from promptascent.prompts.prompt import Prompt
from promptascent.report import compare_report, run_report
from promptascent.search.pool import Candidate
from promptascent.store.run_lock import RunLock
from promptascent.store.run_store import RunStore
from promptascent.web.app import WebSettings, create_app
from promptascent.web.security import TOKEN_HEADER, Access

TOKEN = "test-token-0123456789"
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
LOCAL = ("127.0.0.1", 50000)
AUTH = {TOKEN_HEADER: TOKEN}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return finished_run(tmp_path)


def client_for(tmp_path: Path, *, client: tuple[str, int] = LOCAL) -> TestClient:
    app = create_app(
        WebSettings(tmp_path / "runs", tmp_path / "cache", Access(TOKEN, "127.0.0.1", PORT))
    )
    return TestClient(app, base_url=BASE, client=client)


@pytest.fixture
def web(tmp_path: Path, run_dir: Path) -> TestClient:
    return client_for(tmp_path)


def write_routes() -> list[str]:
    app = create_app(WebSettings(Path("runs"), Path("cache"), Access(TOKEN, "127.0.0.1", PORT)))
    paths = [r.path for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or ())]
    return [p.replace("{run_id}", "first") for p in paths]


def test_the_run_list_and_a_run_page_are_served_to_loopback_without_the_token(
    web: TestClient, run_dir: Path
) -> None:
    index = web.get("/")
    assert index.status_code == 200 and 'href="/runs/first"' in index.text
    page = web.get("/runs/first")
    assert page.status_code == 200
    store = RunStore.open_existing(run_dir)
    best = store.get("result")["best_candidate"]
    store.close()
    assert best in page.text and "Best so far" in page.text
    state = web.get("/runs/first/state").json()
    assert state["status"] == "finished" and state["best"]["id"] == best
    assert len(state["candidates"]) >= 2
    assert web.get(f"/runs/first/candidates/{best}").status_code == 200
    assert TOKEN not in index.text + page.text  # the token is never in a page


def test_a_run_recorded_as_running_whose_process_ended_is_shown_interrupted(
    web: TestClient, run_dir: Path
) -> None:
    store = RunStore.open_existing(run_dir)
    try:
        store.put("status", "running")  # as a run killed mid-way leaves it
    finally:
        store.close()
    dead = subprocess.Popen(["true"])  # a process id nobody holds any more
    dead.wait()
    (run_dir / "run.lock").write_text(f"{dead.pid}\n")
    assert web.get("/runs/first/state").json()["status"] == "interrupted"
    assert "<td>interrupted</td>" in web.get("/").text
    with RunLock(run_dir):  # a live process (this one) holds the run
        assert web.get("/runs/first/state").json()["status"] == "running"
        assert "<td>running</td>" in web.get("/").text
    # this process let it go (as a run that raised in a notebook would): its own pid in
    # the lock file no longer counts
    assert (run_dir / "run.lock").read_text().strip().isdigit()
    assert web.get("/runs/first/state").json()["status"] == "interrupted"


@pytest.mark.parametrize("host", ["evil.example:8765", "127.0.0.1:9999", "evil.example", ""])
def test_a_bad_host_header_is_refused(web: TestClient, host: str) -> None:
    response = web.get("/", headers={"host": host})
    assert response.status_code == 403 and "Host" in response.text
    assert web.post("/runs", headers={"host": host, **AUTH}).status_code == 403


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765", "[::1]:8765"]
)
def test_the_loopback_names_of_this_server_are_accepted(web: TestClient, host: str) -> None:
    assert web.get("/", headers={"host": host}).status_code == 200


def test_reads_from_another_address_need_the_token(tmp_path: Path, run_dir: Path) -> None:
    remote = client_for(tmp_path, client=("192.0.2.7", 40000))
    assert remote.get("/runs/first").status_code == 403
    assert remote.get("/runs/first", headers={TOKEN_HEADER: "wrong"}).status_code == 403
    assert remote.get("/runs/first", headers=AUTH).status_code == 200
    assert remote.get(f"/runs/first/state?token={TOKEN}").status_code == 200


@pytest.mark.parametrize("path", write_routes())
def test_every_write_without_the_token_is_refused(web: TestClient, path: str) -> None:
    assert web.post(path).status_code == 403
    assert web.post(path, data={"task_file": "x"}).status_code == 403
    assert web.post(path, data={"token": "wrong"}).status_code == 403
    assert web.post(path, headers={TOKEN_HEADER: "wrong"}).status_code == 403
    assert web.post(path, json={"token": TOKEN}).status_code == 403  # only header or form
    # A cookie named like the token is not the token (CSRF).
    web.cookies.set("token", TOKEN)
    assert web.post(path, data={"x": "1"}).status_code == 403


def test_the_token_is_accepted_as_a_header_or_a_form_field(web: TestClient) -> None:
    by_header = web.post("/runs", headers=AUTH, data={"task_file": "/nope.yaml"})
    by_form = web.post("/runs", data={"token": TOKEN, "task_file": "/nope.yaml"})
    for response in (by_header, by_form):  # past the token: the task file is checked
        assert response.status_code == 400
        assert response.json() == {"error": "task_file: /nope.yaml does not exist"}


def test_a_start_names_what_is_wrong_with_the_task_file(web: TestClient, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: t\nseed_prompt: hi\nmetrik: exact_match\n")

    def start(path: Path | str, **extra: str) -> tuple[int, str]:
        r = web.post("/runs", headers=AUTH, data={"task_file": str(path), **extra})
        return r.status_code, r.json().get("error", "")

    assert start(tmp_path / "notes.txt") == (400, f"task_file: {tmp_path}/notes.txt is not a "
                                                  ".yaml or .yml file")  # fmt: skip
    code, error = start(bad_yaml)
    assert code == 400 and error.startswith(f"{bad_yaml}: missing key 'data'")
    assert error.count(str(bad_yaml)) == 1
    code, error = start(scripted_task(tmp_path / "t2"), run_id="../escape")
    assert code == 400 and error.startswith("run id '../escape'")
    code, error = start(scripted_task(tmp_path / "t3"), run_id="first")
    assert (code, error) == (409, "run first already exists; resume it instead")


def test_a_second_start_of_a_running_run_is_refused(web: TestClient, tmp_path: Path) -> None:
    task = scripted_task(tmp_path / "slow")
    first = web.post("/runs", headers=AUTH, data={"task_file": str(task), "run_id": "twice"})
    assert first.status_code == 202
    again = web.post("/runs", headers=AUTH, data={"task_file": str(task), "run_id": "twice"})
    assert again.status_code == 409
    workers = web.app.state.workers  # type: ignore[attr-defined]
    workers._workers["twice"].process.wait(60)


def test_model_output_and_data_are_escaped(web: TestClient, run_dir: Path) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    store = RunStore.open_existing(run_dir)
    store.add_candidate(Candidate(Prompt(hostile), operation="induce", step=9).record())
    cid = store.candidates()[-1]["id"]
    store.close()
    for path in ("/runs/first", f"/runs/first/candidates/{cid}"):
        page = web.get(path)
        assert hostile not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
        # Only the page's own script runs: a nonce that changes with every response.
        csp = page.headers["content-security-policy"]
        assert "script-src 'nonce-" in csp and "frame-ancestors 'none'" in csp
        assert page.text.count("<script") == 1


def test_a_span_comment_is_checked_and_stored_with_the_run(web: TestClient, run_dir: Path) -> None:
    store = RunStore.open_existing(run_dir)
    best = store.get("result")["best_candidate"]
    text = store.prompt(best)["instruction"]
    output = store.evaluations(best, "test")[0]
    store.close()
    prompt_comment = {
        "candidate_id": best, "target": "prompt", "start": "0", "end": "6",
        "span": text[:6], "comment": "too vague",
    }  # fmt: skip
    response = web.post("/runs/first/feedback", headers=AUTH, data=prompt_comment)
    assert response.status_code == 201, response.text
    on_output = {
        "candidate_id": best, "target": "output", "start": "0", "end": "2",
        "span": output["output"][:2], "comment": "wrong", "split": "test",
        "example_id": output["example_id"],
    }  # fmt: skip
    assert web.post("/runs/first/feedback", headers=AUTH, data=on_output).status_code == 201
    store = RunStore.open_existing(run_dir)
    stored = store.span_comments()
    store.close()
    assert [(c["target"], c["span"], c["comment"], c["example_id"]) for c in stored] == [
        ("prompt", text[:6], "too vague", None),
        ("output", output["output"][:2], "wrong", output["example_id"]),
    ]
    not_the_text = {**prompt_comment, "span": "nonsense"}
    r = web.post("/runs/first/feedback", headers=AUTH, data=not_the_text)
    assert r.status_code == 400 and r.json()["error"] == "span: not the prompt's text at 0..6"
    r = web.post("/runs/first/feedback", headers=AUTH, data={**prompt_comment, "comment": " "})
    assert r.status_code == 400 and r.json()["error"].startswith("comment: empty")
    r = web.post("/runs/first/feedback", headers=AUTH, data={**prompt_comment, "candidate_id": "x"})
    assert r.status_code == 404
    with RunLock(run_dir):  # another process works on the run: nothing is written
        r = web.post("/runs/first/feedback", headers=AUTH, data=prompt_comment)
    assert r.status_code == 409 and "in use" in r.json()["error"]


def test_unknown_runs_are_not_found(web: TestClient) -> None:
    assert web.get("/runs/nope").status_code == 404
    assert web.get("/runs/..%2F..%2Fetc").status_code == 404
    assert web.get("/runs/first/candidates/nope").status_code == 404
    assert web.post("/runs/nope/stop", headers=AUTH).status_code == 409
    assert web.post("/runs/nope/resume", headers=AUTH).status_code == 404


def test_a_run_another_process_holds_is_not_started_or_resumed_here(
    web: TestClient, tmp_path: Path, run_dir: Path
) -> None:
    task = scripted_task(tmp_path / "locked")
    with RunLock(tmp_path / "runs" / "held"):  # a terminal's run, not recorded yet
        r = web.post("/runs", headers=AUTH, data={"task_file": str(task), "run_id": "held"})
    assert r.status_code == 409 and "is in use by process" in r.json()["error"]
    store = RunStore.open_existing(run_dir)
    store.put("status", "interrupted")
    store.close()
    with RunLock(run_dir):
        r = web.post("/runs/first/resume", headers=AUTH)
    assert r.status_code == 409 and "is in use by process" in r.json()["error"]


def test_the_bound_address_is_also_a_good_host() -> None:
    assert Access(TOKEN, "192.0.2.1", 80).host_ok("192.0.2.1:80")
    assert Access(TOKEN, "::", 80).host_ok("[::]:80")
    assert not Access(TOKEN, "127.0.0.1", 80).host_ok("192.0.2.1:80")


def test_a_worker_that_fails_before_its_run_is_recorded_is_a_400_with_its_error(
    web: TestClient, tmp_path: Path
) -> None:
    task = scripted_task(tmp_path / "broken")
    (task.parent / "broken_metric.py").write_text("raise RuntimeError('no metric today')\n")
    text = task.read_text().replace("metric: choice_accuracy", 'metric: "./broken_metric.py:score"')
    task.write_text(text)
    r = web.post("/runs", headers=AUTH, data={"task_file": str(task), "run_id": "broken"})
    assert r.status_code == 400 and "no metric today" in r.json()["error"]
    assert not (tmp_path / "runs" / "broken" / "run.sqlite").exists()
    assert "no metric today" in (tmp_path / "runs" / ".serve" / "broken.log").read_text()


def test_compares_are_listed_and_shown(web: TestClient, tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "compare-20261203-000000-animals"
    folder.mkdir()
    row = {
        "optimizer": "ape", "seed": 0, "run_id": "first", "status": "finished",
        "test_seed": {"mean": 0.25}, "test_best": {"mean": 0.75},
        "difference": {"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75}, "task_calls": 90,
    }  # fmt: skip
    (folder / "compare.json").write_text(json.dumps({"task": "animals", "rows": [row]}))
    index = web.get("/")
    assert f'href="/compares/{folder.name}"' in index.text
    page = web.get(f"/compares/{folder.name}")
    assert page.status_code == 200
    assert "+0.500 [+0.250, +0.750]" in page.text and 'href="/runs/first"' in page.text
    assert web.get("/compares/nope").status_code == 404


def test_the_full_report_link_serves_the_report_page_with_no_script_allowed(
    web: TestClient, run_dir: Path
) -> None:
    report = web.get("/runs/first/report")
    assert report.status_code == 200
    assert report.text == run_report(run_dir).html()  # the page `promptascent report` writes
    assert "<svg" in report.text and "<script" not in report.text
    policy = report.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_a_run_with_nothing_to_report_yet_shows_its_live_page(
    web: TestClient, tmp_path: Path
) -> None:
    folder = tmp_path / "runs" / "empty"
    folder.mkdir()
    RunStore(folder).close()  # a run that recorded nothing yet
    page = web.get("/runs/empty/report")
    assert page.status_code == 200 and "Best so far" in page.text


def test_a_compare_has_a_full_report(web: TestClient, tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "compare-20261203-000000-animals"
    folder.mkdir()
    row = {
        "optimizer": "ape", "seed": 0, "run_id": "first", "status": "finished",
        "test_seed": {"mean": 0.25, "ci_low": 0.0, "ci_high": 0.5},
        "test_best": {"mean": 0.75, "ci_low": 0.5, "ci_high": 1.0},
        "difference": {"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75, "p_value": 0.01},
        "task_calls": 90,
    }  # fmt: skip
    (folder / "compare.json").write_text(json.dumps({"task": "animals", "rows": [row]}))
    assert f'href="/compares/{folder.name}/report"' in web.get(f"/compares/{folder.name}").text
    report = web.get(f"/compares/{folder.name}/report")
    assert report.status_code == 200
    assert report.text == compare_report(folder).html()


def test_serve_binds_the_host_it_is_given_and_defaults_to_port_8765(tmp_path: Path) -> None:
    """`--host 127.0.0.2` (a loopback address that is not the default): the server
    answers there, not on 127.0.0.1, and says reads from other addresses need the
    token; the port's default is 8765."""
    import os
    import signal
    import socket
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "promptascent", "serve", "--host", "127.0.0.2", "--port",
         str(port), "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "c")],
        cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].startswith(f"promptascent serve: http://127.0.0.2:{port}/#token=")
        assert "reads from other addresses need the token" in lines[2]
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.2:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert reply.status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    shown = subprocess.run(
        [sys.executable, "-m", "promptascent", "serve", "--help"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=60,
    )  # fmt: skip
    assert "[default: 8765]" in shown.stdout
