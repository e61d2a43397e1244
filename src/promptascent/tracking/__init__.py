"""Experiment tracking: a run's parameters, candidate scores, best prompt, test scores
and usage sent to the tools teams use (`optimize --track mlflow|wandb|otel`,
docs/tracking.md).

Each tracker is a thin adapter (base.Tracker) fed by one sink on the run's event bus
(sink.Tracking); no optimizer knows of them, and a failing tracker never stops a run.
"""

from promptascent.tracking.registry import TRACKERS, check_trackers
from promptascent.tracking.sink import Tracking

__all__ = ["TRACKERS", "Tracking", "check_trackers"]
