"""`--track wandb`: a run as a Weights & Biases run.

Where: W&B's own settings (WANDB_MODE: online needs `wandb login` or WANDB_API_KEY;
offline writes the run under WANDB_DIR for a later `wandb sync`), project
WANDB_PROJECT or else the task's name, run name = the promptascent run id. What: the
run's parameters as the W&B config (with `promptascent.run_id` and
`promptascent.resumed`); each candidate evaluation logged as `score/SPLIT` with
`candidate` = the candidate's index as its x-axis (W&B steps only go up, and
candidates are scored out of order: the seed on test comes last); at the end the test
scores, usage and cost per role and the status in the summary (`test/best/mean`,
`usage/task/dollars`, `promptascent.status`), and an artifact `prompts` holding the
seed and best prompts, the candidate table and result.json. A resumed run is a new
W&B run with the same `promptascent.run_id`, as for MLflow.

W&B's console capture, system metrics, machine metadata and code saving are off
(promptascent prints its own output, and a run's machine is none of the log's
business); its error reporting is off unless the user set WANDB_ERROR_REPORTING.
"""

from __future__ import annotations

import json
import os
from typing import Any

from promptascent.events import ModelCalled
from promptascent.tracking.base import CandidateScore, RunEnd, TrackedRun, final_metrics


class WandbTracker:
    name = "wandb"

    def __init__(self) -> None:
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        import wandb

        self.wandb = wandb
        self.run: Any = None
        self.seed_prompt = ""

    def start(self, run: TrackedRun) -> None:
        wandb = self.wandb
        settings = wandb.Settings(
            console="off",
            silent=True,
            disable_git=True,
            save_code=False,
            x_save_requirements=False,
            x_disable_stats=True,
            x_disable_meta=True,
            x_disable_machine_info=True,
            # runs may go on side by side in one process (compare, the web app)
            reinit="create_new",
        )
        config: dict[str, Any] = dict(run.params)
        config["promptascent.run_id"] = run.run_id
        config["promptascent.resumed"] = run.resumed
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or run.task,
            name=run.run_id,
            config=config,
            settings=settings,
        )
        self.run.define_metric("candidate")
        self.run.define_metric("score/*", step_metric="candidate")
        self.seed_prompt = run.seed_prompt

    def record(self, score: CandidateScore) -> None:
        self.run.log({f"score/{score.split}": score.score, "candidate": score.index})

    def model_call(self, call: ModelCalled) -> None:
        """Nothing per call: the usage per role is in the summary at the end."""

    def finish(self, end: RunEnd) -> None:
        if self.run is None:  # the run failed before it started
            return
        run = self.run
        try:
            run.summary["promptascent.status"] = end.status
            prompts = self.wandb.Artifact("prompts", type="prompt")
            with prompts.new_file("seed_prompt.txt", encoding="utf-8") as f:
                f.write(self.seed_prompt)
            with prompts.new_file("candidates.json", encoding="utf-8") as f:
                f.write(json.dumps(end.candidates, indent=2))
            if end.best_prompt is not None:
                with prompts.new_file("best_prompt.txt", encoding="utf-8") as f:
                    f.write(end.best_prompt)
            if end.result is not None:
                run.summary["promptascent.best_candidate"] = end.result["best_candidate"]
                for key, value in final_metrics(end.result).items():
                    run.summary[key.replace(".", "/")] = value
                with prompts.new_file("result.json", encoding="utf-8") as f:
                    f.write(json.dumps(end.result, indent=2))
            run.log_artifact(prompts)
        finally:
            ok = end.status in ("finished", "budget", "stopped")
            run.finish(exit_code=0 if ok else 1)
