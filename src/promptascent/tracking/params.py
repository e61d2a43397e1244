"""A run's parameters for a tracker, from the configuration the run store keeps.

Only what describes the experiment: task, optimizer and its options, the model in
each role, budget limits, seed and scoring. Never a key: a model's `api_key_env`
and `api_key_file` are left out (a base URL cannot hold a user name or password: the
model spec refuses one).
"""

from __future__ import annotations

import json
from typing import Any

from promptascent.llm.types import ROLES


def run_params(config: dict[str, Any], models: dict[str, str] | None = None) -> dict[str, str]:
    """Flat string parameters from a run's stored configuration (Runner._config).
    `models`: the model of a role whose backend was given as an object (RunSettings
    backends), by its model id, in place of the task file's."""
    task = config["task"]
    opt = config["optimizer"]
    params = {
        "task": str(task["name"]),
        "optimizer": str(opt["name"]),
        "seed": str(task.get("seed")),
        "scoring": str(task.get("evaluation", {}).get("scoring")),
    }
    for key, value in sorted(opt.get("options", {}).items()):
        params[f"optimizer.{key}"] = _text(value)
    for role in ROLES:
        spec = task.get("models", {}).get(role)
        if models and role in models:
            params[f"model.{role}"] = models[role]
        elif spec:
            params[f"model.{role}"] = model_name(spec)
    for key, value in sorted(config.get("budget", {}).items()):
        params[f"budget.{key}"] = _text(value)
    return params


def model_name(spec: dict[str, Any]) -> str:
    """backend[:model][@base URL]."""
    name = str(spec.get("backend"))
    if spec.get("model"):
        name += f":{spec['model']}"
    if spec.get("base_url"):
        name += f"@{spec['base_url']}"
    return name


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
