"""Likelihood scoring on the scripted model: exact numbers, calibration, selection by
accuracy with the loss as tie-breaker or by the loss, and the checks made at plan time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from scripted import KEY, PAIRS, animal_dataset, optimizer_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.config.task import load_task
from promptascent.data.example import Example
from promptascent.errors import ConfigError
from promptascent.evaluation.evaluator import Evaluator
from promptascent.evaluation.likelihood import LikelihoodScoring
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import LoglikRequest
from promptascent.llm.usage import UsageMeter
from promptascent.metrics.builtin import ChoiceAccuracy
from promptascent.prompts.prompt import Prompt
from promptascent.runner import estimate, plan


def _client(loglik_fn, responder=lambda r: "unused") -> tuple[ModelClient, ScriptedLLM]:  # type: ignore[no-untyped-def]
    llm = ScriptedLLM(responder, loglik_fn=loglik_fn)
    meter = UsageMeter()
    return ModelClient("task", llm, meter=meter, guard=BudgetGuard(Budget(), meter)), llm


def _evaluator(loglik_fn, **scoring) -> tuple[Evaluator, ScriptedLLM]:  # type: ignore[no-untyped-def]
    client, llm = _client(loglik_fn)
    ev = Evaluator(client, ChoiceAccuracy(), concurrency=1, likelihood=LikelihoodScoring(**scoring))
    return ev, llm


def _user(req: LoglikRequest) -> str:
    return req.messages[-1].content


YES_NO = Example("q1", "Is it raining?", target="No", choices=("Yes", "No"))


def test_the_most_likely_choice_is_the_answer_with_its_loss_and_probability() -> None:
    ev, _ = _evaluator(lambda req: [-2.0, -1.0])
    res = ev.evaluate(Prompt("Answer: {input}"), [YES_NO])
    r = res.results[0]
    p_no = math.exp(-1.0) / (math.exp(-1.0) + math.exp(-2.0))
    assert (r.prediction, r.output, r.score, r.parsed) == ("No", "No", 1.0, True)
    assert r.gold_prob == pytest.approx(p_no)
    assert r.loss == pytest.approx(-math.log(p_no))
    assert res.mean_loss == pytest.approx(-math.log(p_no)) and res.unparsed == 0


def test_a_wrong_answer_is_still_an_answer_never_unparsed() -> None:
    ev, _ = _evaluator(lambda req: [-0.5, -3.0])
    r = ev.evaluate(Prompt("{input}"), [YES_NO]).results[0]
    assert (r.prediction, r.score, r.parsed) == ("Yes", 0.0, True)
    assert r.loss is not None and r.loss > math.log(2)


@pytest.mark.parametrize(
    ("normalize", "expected"),
    [("sum", "No"), ("mean", "Definitely yes"), ("byte", "Definitely yes")],
)
def test_length_normalisation_of_multi_token_choices(normalize: str, expected: str) -> None:
    """ "Definitely yes" is 2 scripted tokens and 14 bytes at -3.0 in all; "No" is one
    token and 2 bytes at -2.0: the sum prefers "No", per token and per byte the other."""
    ex = Example("q", "?", target="No", choices=("Definitely yes", "No"))
    ev, _ = _evaluator(lambda req: [-3.0, -2.0], normalize=normalize)
    assert ev.evaluate(Prompt("{input}"), [ex]).results[0].prediction == expected


def _biased(req: LoglikRequest) -> list[float]:
    """Prefers "Yes" by 1 nat on every input; on real inputs the evidence for the
    right answer is 0.6 nats: without calibration it always says "Yes"."""
    text = _user(req)
    right = "No" if "dry" in text else "Yes" if "wet" in text else None
    return [
        (-1.0 if c == "Yes" else -2.0) + (0.6 if c == right else 0.0) for c in req.continuations
    ]


def _weather() -> list[Example]:
    return [
        Example(f"w{i}", f"The ground is {state}. Did it rain?", target=t, choices=("Yes", "No"))
        for i, (state, t) in enumerate([("wet", "Yes"), ("dry", "No"), ("dry", "No")])
    ]


def test_contextual_calibration_divides_out_the_content_free_bias() -> None:
    plain, _ = _evaluator(_biased)
    assert plain.evaluate(Prompt("{input}"), _weather()).mean == pytest.approx(1 / 3)
    calibrated, llm = _evaluator(_biased, calibration="contextual")
    res = calibrated.evaluate(Prompt("{input}"), _weather())
    assert res.mean == 1.0
    # the three content-free inputs, asked once for the prompt (not once per example)
    free = [r for r in llm.loglik_requests if "The ground" not in _user(r)]
    assert sorted(_user(r) for r in free) == ["", "N/A", "[MASK]"]


def test_pmi_calibration_subtracts_the_score_given_an_empty_input() -> None:
    ev, llm = _evaluator(_biased, calibration="pmi")
    assert ev.evaluate(Prompt("Q: {input}"), _weather()).mean == 1.0
    assert [_user(r) for r in llm.loglik_requests].count("Q: ") == 1


def test_an_example_without_choices_cannot_be_scored_by_likelihood(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    task = write_animal_task(folder, extra="evaluation: {scoring: likelihood}\n")
    dev = (folder / "dev.jsonl").read_text().splitlines()
    dev[3] = dev[3].split(', "choices"')[0] + "}"
    (folder / "dev.jsonl").write_text("\n".join(dev) + "\n")
    task.write_text(task.read_text().replace("choice_accuracy", "exact_match"))
    p = plan(load_task(task))
    with pytest.raises(ConfigError, match=r"likelihood: dev split: example 'dev-3' has no choices"):
        p.scoring(ScriptedLLM(lambda r: "", loglik_fn=lambda r: [0.0]).info)


def test_likelihood_on_a_model_that_cannot_score_is_refused_before_any_call(
    tmp_path: Path,
) -> None:
    task = write_animal_task(tmp_path / "t", extra="evaluation: {scoring: likelihood}\n")
    no_loglik = ScriptedLLM(lambda r: "cat")
    p = plan(load_task(task))
    with pytest.raises(ConfigError, match="cannot score continuations"):
        estimate(p, backends={"task": no_loglik, "optimizer": no_loglik, "judge": no_loglik})
    assert not no_loglik.requests


def test_auto_takes_likelihood_where_it_can_and_says_so_where_it_cannot(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "t", extra="evaluation: {scoring: auto}\n")
    p = plan(load_task(task))
    scorer = ScriptedLLM(lambda r: "", loglik_fn=lambda r: [0.0] * len(r.continuations))
    assert p.scoring(scorer.info).likelihood is not None
    fallback = p.scoring(ScriptedLLM(lambda r: "").info)
    assert fallback.likelihood is None and "cannot score continuations" in fallback.note


def test_select_by_loss_needs_likelihood_scoring(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "t", extra="evaluation: {select_by: loss}\n")
    with pytest.raises(ConfigError, match=r"select_by: loss needs evaluation\.scoring"):
        plan(load_task(task)).scoring(ScriptedLLM(lambda r: "").info)


# --------------------------------------------------------------------------- whole runs


def _animal_loglik(req: LoglikRequest) -> list[float]:
    """Sure of the right animal with the key instruction; without it, unsure: the right
    animal is ahead by a hair on half the animals and behind on the others."""
    user = _user(req)
    animal = next((w for w in user.split() if w in PAIRS), None)
    right = PAIRS.get(animal or "", "")
    keyed = KEY in user
    out = []
    for c in req.continuations:
        if c == right:
            out.append(-0.1 if keyed else -2.0)
        elif c == animal and not keyed:
            out.append(-1.9 if animal in ("cat", "cow", "fox") else -2.1)
        else:
            out.append(-6.0)
    return out


def _run(tmp_path: Path, extra: str, **kw):  # type: ignore[no-untyped-def]
    task = write_animal_task(
        tmp_path / "t",
        extra="optimizer: {name: ape, num_candidates: 6, eval_examples: 6, rounds: 0}\n" + extra,
    )
    scorer = ScriptedLLM(lambda r: "no generation here", loglik_fn=_animal_loglik)
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": scorer, "optimizer": optimizer_model(), "judge": scorer},
    )
    return optimize(task, settings=settings, **kw), scorer


def test_an_optimization_scored_by_likelihood_finds_the_key_and_reports_losses(
    tmp_path: Path,
) -> None:
    result, scorer = _run(tmp_path, "evaluation: {scoring: likelihood, concurrency: 2}\n")
    assert not scorer.requests  # nothing was generated
    assert KEY in result.best_prompt.instruction
    assert result.test_best.mean == 1.0 and result.test_best.unparsed == 0
    assert result.test_best.mean_loss < result.test_seed.mean_loss
    d = result.to_dict()
    assert d["scoring"].startswith("likelihood (sum, no calibration), selected by accuracy")
    assert d["test"]["best"]["mean_loss"] == pytest.approx(result.test_best.mean_loss)


def test_a_rerun_scored_by_likelihood_is_answered_from_the_cache(tmp_path: Path) -> None:
    first, scorer = _run(tmp_path, "evaluation: {scoring: likelihood}\n", seed=1)
    calls = len(scorer.loglik_requests)
    again, scorer2 = _run(tmp_path, "evaluation: {scoring: likelihood}\n", seed=1)
    assert calls > 0 and not scorer2.loglik_requests
    assert again.best.id == first.best.id
    assert again.usage["task"]["cache_hits"] == again.usage["task"]["calls"]


def test_the_lower_loss_breaks_a_tie_in_accuracy() -> None:
    from promptascent.evaluation.result import EvaluationResult, ExampleResult
    from promptascent.search.pool import Candidate, CandidatePool

    pool = CandidatePool()
    a, _ = pool.add(Candidate(Prompt("first")))
    b, _ = pool.add(Candidate(Prompt("second")))
    a.evaluations["dev"] = EvaluationResult(a.id, (ExampleResult("x", "y", 1.0, loss=0.6),))
    b.evaluations["dev"] = EvaluationResult(b.id, (ExampleResult("x", "y", 1.0, loss=0.2),))
    assert pool.best("dev") is b
    # by loss, a better loss beats a better accuracy
    c, _ = pool.add(Candidate(Prompt("third")))
    c.evaluations["dev"] = EvaluationResult(
        c.id, (ExampleResult("x", "n", 0.0, loss=0.1),), select_by="loss"
    )
    for cand in (a, b):
        ev = cand.evaluations["dev"]
        cand.evaluations["dev"] = EvaluationResult(ev.prompt_id, ev.results, select_by="loss")
    assert pool.best("dev") is c


def test_the_likelihood_scoring_is_shown_in_the_dry_run_estimate(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "t", extra="evaluation: {scoring: likelihood}\n")
    scorer = ScriptedLLM(lambda r: "", loglik_fn=lambda r: [0.0] * len(r.continuations))
    e = estimate(plan(load_task(task)), backends={"task": scorer, "optimizer": scorer})
    assert e["scoring"].startswith("likelihood (sum, no calibration)")
    assert e["test"]["max_completion_tokens"] == 0


def test_animal_dataset_targets_are_among_their_choices() -> None:
    # the fixture the runs above rely on
    assert all(ex.target in (ex.choices or ()) for ex in animal_dataset("x", 6))


def summary_text(result: dict[str, Any]) -> str:
    """What the terminal summary prints for a result.json content."""
    import io

    from rich.console import Console

    from promptascent.cli.summary import print_result

    out = io.StringIO()
    print_result(Console(file=out, width=200), result)
    return out.getvalue()


def test_the_summary_shows_both_prompts_predictions_and_the_likelihood_note(
    tmp_path: Path,
) -> None:
    result, _ = _run(tmp_path, "evaluation: {scoring: likelihood}\n")
    d = result.to_dict()
    d["test"]["best"]["mean"] = 0.0  # as if the best were no better than the majority class
    text = summary_text(d)
    assert "predictions: seed " in text and "; best " in text
    assert "has not made the model better at the task" in text
    assert "answer format" not in text


def test_a_gain_over_the_seed_at_the_majority_rate_is_not_announced_as_plain_success(
    tmp_path: Path,
) -> None:
    result, _ = _run(tmp_path, "evaluation: {scoring: likelihood}\n")
    d = result.to_dict()
    d["best_candidate"] = "not-the-seed"
    d["test"]["difference"] = {
        "mean": 0.08,
        "ci_low": 0.02,
        "ci_high": 0.15,
        "wins": 10,
        "losses": 2,
        "ties": 88,
        "p_value": 0.04,
    }
    for best, expected in ((0.49, "but not always answering the majority class"), (0.9, "")):
        d["test"]["majority_rate"] = 0.51
        d["test"]["best"]["mean"] = best
        text = summary_text(d)
        assert "The best prompt beats the seed on held-out data" in text
        assert (expected in text) if expected else ("majority class (below)" not in text)
