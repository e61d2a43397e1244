"""The web app's routes (Starlette). Pages are rendered on the server with Jinja2
(autoescaped: model output and data are text), each with a per-response nonce for
its one inline script (Content-Security-Policy: nothing else runs, nothing is loaded
from elsewhere). JSON endpoints answer the page's script; `/runs/{id}/events` streams
a run's state as Server-Sent Events. Every write goes through `_write` (the token),
and the AccessMiddleware (security.py) checks Host and reads first.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from promptascent.config.task import load_task
from promptascent.errors import ConfigError, PromptascentError, RunInUse, TemplateError
from promptascent.planning import plan
from promptascent.preference.duel import Choice
from promptascent.preference.session import KIND as PREFER_KIND
from promptascent.prompts.prompt import Prompt
from promptascent.run_settings import RunSettings
from promptascent.span_feedback import span_comment
from promptascent.store.run_folders import new_run_id
from promptascent.store.run_lock import RunLock
from promptascent.store.run_store import RunStore
from promptascent.web import run_view
from promptascent.web.duels import VERDICTS, PreferenceSessions
from promptascent.web.report_view import report_page
from promptascent.web.run_view import NotFound
from promptascent.web.security import Access, AccessMiddleware, require_token
from promptascent.web.workers import Conflict, Workers, check_run_id

ENDED = ("finished", "budget", "stopped", "interrupted", "failed", "quit")
STREAM_POLL_SECONDS = 0.4
STREAM_KEEPALIVE_SECONDS = 15.0
TASK_SUFFIXES = (".yaml", ".yml")

_templates = Environment(
    loader=PackageLoader("promptascent.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


@dataclass
class WebSettings:
    runs_dir: Path
    cache_dir: Path
    access: Access


def create_app(settings: WebSettings) -> Starlette:
    """The app serving `settings.runs_dir`, driven with `settings.access.token`."""
    runs_dir = settings.runs_dir.resolve()
    workers = Workers(runs_dir, settings.cache_dir.resolve())
    sessions = PreferenceSessions(
        RunSettings(runs_dir=runs_dir, cache_dir=settings.cache_dir.resolve())
    )
    access = settings.access

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = _templates.get_template(name).render(nonce=nonce, **context)
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        return response

    def not_found(message: str) -> HTMLResponse:
        return page("error.html", 404, message=message)

    async def index(request: Request) -> Response:
        runs, compares = await run_in_threadpool(
            lambda: (run_view.list_runs(runs_dir), run_view.list_compares(runs_dir))
        )
        return page("index.html", runs=runs, compares=compares, runs_dir=str(runs_dir))

    def render_run(folder: Path) -> Response:
        view = run_view.run_view(folder)
        session = sessions.get(view["id"])
        return page(
            "run.html",
            run=view,
            worker=workers.state(view["id"]),
            session_live=session is not None and session.live,
        )

    async def run_page(request: Request) -> Response:
        try:
            folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
        except NotFound as e:
            return not_found(str(e))
        return await run_in_threadpool(render_run, folder)

    async def report(request: Request) -> Response:
        try:
            folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
        except NotFound as e:
            return not_found(str(e))
        return await run_in_threadpool(
            report_page, folder, compare=False, fallback=lambda: render_run(folder)
        )

    async def compare_page(request: Request) -> Response:
        try:
            folder = run_view.compare_folder(runs_dir, request.path_params["name"])
        except NotFound as e:
            return not_found(str(e))

        return await run_in_threadpool(
            lambda: page("compare.html", compare=run_view.compare_view(folder))
        )

    async def compare_report_page(request: Request) -> Response:
        try:
            folder = run_view.compare_folder(runs_dir, request.path_params["name"])
        except NotFound as e:
            return not_found(str(e))

        def fallback() -> Response:
            return page("compare.html", compare=run_view.compare_view(folder))

        return await run_in_threadpool(report_page, folder, compare=True, fallback=fallback)

    async def state(request: Request) -> Response:
        try:
            folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
            view = await run_in_threadpool(run_view.run_view, folder)
        except NotFound as e:
            return JSONResponse({"error": str(e)}, 404)
        return JSONResponse({**view, "worker": workers.state(view["id"])})

    async def events(request: Request) -> Response:
        try:
            folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
        except NotFound as e:
            return JSONResponse({"error": str(e)}, 404)
        run_id = folder.name

        async def stream() -> AsyncIterator[str]:
            last, quiet = "", 0.0
            while not await request.is_disconnected():
                view = await run_in_threadpool(run_view.run_view, folder)
                data = json.dumps({**view, "worker": workers.state(run_id)})
                if data != last:
                    yield f"data: {data}\n\n"
                    last, quiet = data, 0.0
                elif quiet >= STREAM_KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                if view["status"] in ENDED and not workers.live(run_id):
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(STREAM_POLL_SECONDS)
                quiet += STREAM_POLL_SECONDS

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def candidate_page(request: Request) -> Response:
        try:
            folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
            view = await run_in_threadpool(
                run_view.candidate_view, folder, request.path_params["candidate_id"]
            )
        except NotFound as e:
            return not_found(str(e))
        return page("candidate.html", c=view)

    async def start_run(form: FormData) -> Response:
        task_file = checked_task_file(_field(form, "task_file"))
        p = await run_in_threadpool(_plan, task_file)
        run_id = _field(form, "run_id", "") or new_run_id(p.task.name, p.optimizer.name)
        await run_in_threadpool(workers.optimize, task_file, check_run_id(run_id))
        return JSONResponse({"run_id": run_id, "url": f"/runs/{run_id}"}, 202)

    async def stop_run(request: Request, form: FormData) -> Response:
        run_id = request.path_params["run_id"]
        workers.stop(run_id)
        return JSONResponse({"run_id": run_id, "stopping": True}, 202)

    async def resume_run(request: Request, form: FormData) -> Response:
        folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
        view = await run_in_threadpool(run_view.run_view, folder)
        if view["kind"] == "prefer":
            sessions.resume(folder)
            return JSONResponse({"run_id": folder.name, "url": f"/prefer/{folder.name}"}, 202)
        if view["status"] not in ("interrupted", "failed", "running"):
            raise Conflict(f"run {folder.name} is {view['status']}: nothing to resume")
        await run_in_threadpool(workers.resume, folder.name)
        return JSONResponse({"run_id": folder.name, "url": f"/runs/{folder.name}"}, 202)

    async def add_feedback(request: Request, form: FormData) -> Response:
        folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
        comment = await run_in_threadpool(_store_span_comment, folder, form)
        return JSONResponse({"stored": comment}, 201)

    async def refine(request: Request, form: FormData) -> Response:
        folder = run_view.run_folder(runs_dir, request.path_params["run_id"])
        candidate = _field(form, "candidate")
        new_id = _field(form, "run_id", "") or f"{folder.name[:150]}-refined-{secrets.token_hex(2)}"
        await run_in_threadpool(workers.refine, folder.name, candidate, check_run_id(new_id))
        return JSONResponse({"run_id": new_id, "url": f"/runs/{new_id}"}, 202)

    async def start_prefer(form: FormData) -> Response:
        task_file = checked_task_file(_field(form, "task_file"))
        from_run = _field(form, "from_run", "")
        source = run_view.run_folder(runs_dir, from_run) if from_run else None
        task = await run_in_threadpool(load_task, task_file)
        run_id = _field(form, "run_id", "") or new_run_id(task.name, PREFER_KIND)
        sessions.start(
            task_file,
            check_run_id(run_id),
            from_run=source,
            candidates=_int(form, "candidates", 4),
            rounds=_int(form, "rounds", 20),
        )
        return JSONResponse({"run_id": run_id, "url": f"/prefer/{run_id}"}, 202)

    async def prefer_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        session = sessions.get(run_id)
        if session is None:
            try:
                run_view.run_folder(runs_dir, run_id)
            except NotFound as e:
                return not_found(str(e))
        return page("prefer.html", run_id=run_id, state=session.state() if session else None)

    async def prefer_state(request: Request) -> Response:
        session = sessions.get(request.path_params["run_id"])
        if session is None:
            return JSONResponse({"error": "no preference session here"}, 404)
        return JSONResponse(session.state())

    async def verdict(request: Request, form: FormData) -> Response:
        choice = _field(form, "choice")
        if choice not in VERDICTS:
            raise ConfigError(f"choice: {choice!r} is not one of {', '.join(VERDICTS)}")
        chosen = cast(Choice, choice)
        state = await run_in_threadpool(
            sessions.answer, request.path_params["run_id"], _int(form, "round", -1), chosen
        )
        return JSONResponse(state)

    async def pause(request: Request, form: FormData) -> Response:
        await run_in_threadpool(sessions.pause, request.path_params["run_id"])
        return JSONResponse({"paused": True})

    def _write(handler: Callable[..., Awaitable[Response]], *, with_request: bool = True) -> Any:
        """A write route: the token first (403), then the handler; its errors become
        one-line JSON: bad input 400, no such run 404, a conflict 409."""

        async def endpoint(request: Request) -> Response:
            refusal = await require_token(request, access)
            if refusal is not None:
                return JSONResponse({"error": refusal}, 403)
            form = await request.form()
            try:
                if with_request:
                    return await handler(request, form)
                return await handler(form)
            except NotFound as e:
                return JSONResponse({"error": str(e)}, 404)
            except (Conflict, RunInUse) as e:
                return JSONResponse({"error": str(e)}, 409)
            except PromptascentError as e:
                return JSONResponse({"error": " ".join(str(e).split())}, 400)

        return endpoint

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # The server is stopping: sessions quit, workers get Ctrl-C; all resumable.
        await run_in_threadpool(sessions.close_all)
        await run_in_threadpool(workers.stop_all)

    routes = [
        Route("/", index),
        Route("/runs", _write(start_run, with_request=False), methods=["POST"]),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/state", state),
        Route("/runs/{run_id}/events", events),
        Route("/runs/{run_id}/report", report),
        Route("/runs/{run_id}/stop", _write(stop_run), methods=["POST"]),
        Route("/runs/{run_id}/resume", _write(resume_run), methods=["POST"]),
        Route("/runs/{run_id}/feedback", _write(add_feedback), methods=["POST"]),
        Route("/runs/{run_id}/refine", _write(refine), methods=["POST"]),
        Route("/runs/{run_id}/candidates/{candidate_id}", candidate_page),
        Route("/compares/{name}", compare_page),
        Route("/compares/{name}/report", compare_report_page),
        Route("/prefer", _write(start_prefer, with_request=False), methods=["POST"]),
        Route("/prefer/{run_id}", prefer_page),
        Route("/prefer/{run_id}/state", prefer_state),
        Route("/prefer/{run_id}/verdict", _write(verdict), methods=["POST"]),
        Route("/prefer/{run_id}/pause", _write(pause), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessMiddleware, access=access)],
        lifespan=lifespan,
    )
    app.state.workers = workers
    app.state.sessions = sessions
    return app


def checked_task_file(text: str) -> Path:
    """The task file a start names: a YAML file on the server's disk (ConfigError
    naming it otherwise)."""
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = path.resolve()
    if path.suffix.lower() not in TASK_SUFFIXES:
        raise ConfigError(f"task_file: {path} is not a .yaml or .yml file")
    if not path.is_file():
        raise ConfigError(f"task_file: {path} does not exist")
    return path


def _plan(task_file: Path) -> Any:
    task = load_task(task_file)  # its errors name the file
    try:
        return plan(task)
    except (ConfigError, TemplateError) as e:
        raise type(e)(f"{task_file}: {e}") from None


def _store_span_comment(folder: Path, form: FormData) -> dict[str, Any]:
    """Checks the comment against the text it was made on and stores it, holding the
    run's lock for the write (a run in use by another process: RunInUse, 409)."""
    candidate_id = _field(form, "candidate_id")
    target = _field(form, "target")
    split = _field(form, "split", "") or None
    example_id = _field(form, "example_id", "") or None
    with RunLock(folder):
        store = RunStore(folder)
        try:
            try:
                prompt = Prompt.from_dict(store.prompt(candidate_id))
            except ConfigError:
                raise NotFound(f"no candidate {candidate_id!r} in run {folder.name}") from None
            if target == "output" and split and example_id:
                rows = [
                    r
                    for r in store.evaluations(candidate_id, split)
                    if r["example_id"] == example_id
                ]
                if not rows:
                    raise ConfigError(f"example_id: no output of {candidate_id} on {example_id}")
                source = rows[0]["output"]
            else:
                source = prompt.instruction
            comment = span_comment(
                source,
                candidate_id=candidate_id,
                target=target,
                start=_int(form, "start", -1),
                end=_int(form, "end", -1),
                span=_field(form, "span"),
                comment=_field(form, "comment"),
                split=split,
                example_id=example_id,
            )
            store.add_span_comment(comment.to_dict())
        finally:
            store.close()
    return comment.to_dict()


def _field(form: FormData, name: str, default: str | None = None) -> str:
    value = form.get(name)
    if isinstance(value, str):
        return value.strip() if name not in ("span", "comment") else value
    if default is not None:
        return default
    raise ConfigError(f"{name}: missing")


def _int(form: FormData, name: str, default: int) -> int:
    value = form.get(name)
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"{name}: {str(value)[:40]!r} is not a whole number") from None
