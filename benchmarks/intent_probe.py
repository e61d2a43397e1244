"""Intent analysis on the embedded model: how often does SmolLM2-135M give a usable
task draft, and what do the rules make of a description (issue: description-only
pipeline, step 1)?

    cd benchmarks && ../.venv/bin/python intent_probe.py

For each description below, `analyse_intent` asks the optimizer model (the embedded
SmolLM2-135M-Instruct, no cache) up to twice, as `optimize --describe` does. Prints
per description whether a reply was usable (`from_model`), the fields it gave, the
draft's task type, labels and metric, and the repair notes; writes
benchmarks/results/intent_probe.json.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any

from _common import RESULTS, machine

from promptascent.config.task import ModelSpec
from promptascent.describe.intent import analyse_intent, load_template, parse_intent_reply
from promptascent.llm.budget import Budget
from promptascent.llm.hub import ModelHub
from promptascent.llm.spec import ModelsSpec

DESCRIPTIONS = [
    "Classify support tickets by urgency: low, medium or high",
    "Given navigation instructions, answer True if following them returns you to the "
    "starting point, otherwise False.",
    "Decide whether a sentence about sports is plausible or implausible.",
    "Decide whether Speaker 2's answer to Speaker 1 means yes or no.",
    "Tag each product review as positive, negative or neutral",
    "Summarise a news paragraph in one sentence",
    "Extract all person names from a text",
    "Answer trivia questions about geography",
]


def main() -> int:
    hub = ModelHub(ModelsSpec(optimizer=ModelSpec.parse("embedded")))
    client = hub.client("optimizer", hub.guard(Budget()))
    replies: list[str] = []  # the replies to the current description
    original = client.complete

    def recording(request: Any) -> Any:
        reply = original(request)
        replies.append(reply.text)
        return reply

    client.complete = recording  # type: ignore[method-assign]
    rows: list[dict[str, Any]] = []
    began = time.time()
    for description in DESCRIPTIONS:
        replies.clear()
        draft = analyse_intent(description, client)
        rows.append(
            {
                "description": description,
                "from_model": draft.from_model,
                "fields_per_reply": [parse_intent_reply(r) for r in replies],
                "replies": list(replies),
                "task_type": draft.task_type,
                "labels": list(draft.labels),
                "metric": draft.metric if isinstance(draft.metric, str) else draft.metric["name"],
                "notes": list(draft.notes),
            }
        )
        r = rows[-1]
        print(
            f"{description[:60]!r}: usable reply {r['from_model']}, "
            f"{r['task_type']}, labels {r['labels']}, {r['metric']}",
            flush=True,
        )
    out = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "template": load_template("intent.txt"),
        "wall_seconds": time.time() - began,
        "usage": asdict(hub.meter.snapshot()["optimizer"]),
        "rows": rows,
    }
    (RESULTS / "intent_probe.json").write_text(json.dumps(out, indent=2) + "\n")
    usable = sum(r["from_model"] for r in rows)
    print(f"usable drafts from the model: {usable} of {len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
