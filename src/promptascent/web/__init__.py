"""`promptascent serve`: the local web app (docs/web.md).

Starlette, server-rendered HTML (Jinja2, autoescaped) with a small inline script and
no external resource; live updates by Server-Sent Events read from the run stores.
Modules: `security` (the token, the Host check, who may read), `workers` (runs in
worker processes, stopped like Ctrl-C), `duels` (the preference loop in the browser),
`run_view` (what the pages show, read from the runs folder), `report_view` (where
the full report goes), `app` (the routes), `server` (uvicorn, the printed token).
"""
