"""Tracker names (`optimize --track NAME`), each with the extra that installs it.

A tracker's library is imported only when a run asks for it; `check_trackers`
fails fast (ConfigError, before anything is spent) on an unknown name or a missing
library.
"""

from __future__ import annotations

import importlib.util

from promptascent.errors import ConfigError
from promptascent.tracking.base import Tracker

# name -> (module the tracker needs, extra that installs it)
TRACKERS: dict[str, tuple[str, str]] = {
    "mlflow": ("mlflow", "mlflow"),
    "otel": ("opentelemetry.sdk", "otel"),
    "wandb": ("wandb", "wandb"),
}


def check_trackers(names: tuple[str, ...] | list[str]) -> None:
    """ConfigError naming the first unknown tracker, the extra a tracker needs, or an
    OpenTelemetry exporter that is not installed."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"--track: {name!r} is not one of {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module.split(".")[0]) is None or (
            "." in module and importlib.util.find_spec(module) is None
        ):
            raise ConfigError(
                f"--track {name} needs {module.split('.')[0]}: pip install 'promptascent[{extra}]'"
            )
        if name == "otel":  # its exporter comes from the environment: checked now too
            from promptascent.tracking.otel import check_exporters

            check_exporters()


def create_tracker(name: str) -> Tracker:
    check_trackers([name])
    if name == "mlflow":
        from promptascent.tracking.mlflow_tracker import MlflowTracker

        return MlflowTracker()
    if name == "wandb":
        from promptascent.tracking.wandb_tracker import WandbTracker

        return WandbTracker()
    from promptascent.tracking.otel import OtelTracker

    return OtelTracker()
