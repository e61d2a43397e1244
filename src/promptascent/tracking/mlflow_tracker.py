"""`--track mlflow`: a run as an MLflow run.

Where: MLFLOW_TRACKING_URI (MLflow's own default, ./mlruns, when unset), experiment
MLFLOW_EXPERIMENT_NAME or else the task's name. What: the run's parameters; each
candidate evaluation as metric `score.SPLIT` at step = the candidate's index; at the
end the seed and best prompts, the candidate table and result.json as artifacts, the
test scores with their confidence intervals and the usage and cost per role as
metrics, and the run's status. A resumed run is a new MLflow run, tagged with the same
`promptascent.run_id` (its search replays, so it holds the whole history again).

MlflowClient, not the fluent API: the fluent API keeps one active run per process,
and runs may go on in parallel threads (compare, the web app). MLflow's usage
telemetry is turned off unless the user set MLFLOW_DISABLE_TELEMETRY.
"""

from __future__ import annotations

import json
import logging
import os

from promptascent.events import ModelCalled
from promptascent.tracking.base import CandidateScore, RunEnd, TrackedRun, final_metrics

# MLflow's final run states, by the run's status.
_STATES = {
    "finished": "FINISHED",
    "budget": "FINISHED",
    "stopped": "FINISHED",
    "interrupted": "KILLED",
    "failed": "FAILED",
}


class MlflowTracker:
    name = "mlflow"

    def __init__(self) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        # MLflow logs its database set-up at INFO on the root handler; the run's own
        # output is the CLI's to print.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.client = MlflowClient()
        self.mlflow_run_id: str | None = None

    def start(self, run: TrackedRun) -> None:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or run.task
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        tags = {"promptascent.run_id": run.run_id, "promptascent.resumed": str(run.resumed)}
        created = self.client.create_run(experiment_id, run_name=run.run_id, tags=tags)
        self.mlflow_run_id = created.info.run_id
        from mlflow.entities import Param

        self.client.log_batch(
            self.mlflow_run_id,
            params=[Param(k, v[:6000]) for k, v in run.params.items()],
        )
        self.client.log_text(self.mlflow_run_id, run.seed_prompt, "seed_prompt.txt")

    def record(self, score: CandidateScore) -> None:
        assert self.mlflow_run_id is not None
        self.client.log_metric(
            self.mlflow_run_id, f"score.{score.split}", score.score, step=score.index
        )

    def model_call(self, call: ModelCalled) -> None:
        """Nothing per call: the usage per role is logged at the end."""

    def finish(self, end: RunEnd) -> None:
        run_id = self.mlflow_run_id
        if run_id is None:  # the run failed before it started
            return
        self.client.set_tag(run_id, "promptascent.status", end.status)
        self.client.log_text(run_id, json.dumps(end.candidates, indent=2), "candidates.json")
        if end.best_prompt is not None:
            self.client.log_text(run_id, end.best_prompt, "best_prompt.txt")
        if end.result is not None:
            self.client.log_text(run_id, json.dumps(end.result, indent=2), "result.json")
            self.client.set_tag(run_id, "promptascent.best_candidate", end.result["best_candidate"])
            for key, value in final_metrics(end.result).items():
                self.client.log_metric(run_id, key, value)
        self.client.set_terminated(run_id, _STATES.get(end.status, "FINISHED"))
