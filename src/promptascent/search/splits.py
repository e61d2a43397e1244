"""The names of evaluation splits: the keys of `Candidate.evaluations`, the `split`
of every CandidateEvaluated event and of the run store's evaluations. One name per
kind of evaluation, spelled here only."""

from __future__ import annotations

SUBSET = "dev-subset"  # the fixed dev examples candidates are screened on
DEV = "dev"  # the whole dev split: finalists are selected on it
FINAL = "dev-final"  # part of the dev split: a final selection the budget kept smaller
CV = "cv"  # k-fold selection: the fold winners on every pooled example
PAIRWISE = "spo"  # SPO's selection: pairwise judge verdicts, no scores
TRAIN = "train"  # the winner on train examples, after the search (the train-dev gap)
TEST = "test"  # seed and winner on the test split, after the search (the report)
BOOTSTRAP = "train-bootstrap"  # the train examples demonstrations are bootstrapped from

_BLOCK = "dev-block-"
_BATCH = "dev-batch-"


def block(i: int) -> str:
    """The i-th dev block a race scores candidates on (CAPO), from 0."""
    return f"{_BLOCK}{i}"


def is_block(split: str) -> bool:
    return split.startswith(_BLOCK)


def batch(k: int) -> str:
    """The k-th dev minibatch a bandit pulls an arm on (ProTeGi), from 0."""
    return f"{_BATCH}{k}"


def is_batch(split: str) -> bool:
    return split.startswith(_BATCH)


def train_round(r: int) -> str:
    """The train minibatch of round r whose errors a prompt is edited from (ProTeGi)."""
    return f"train-r{r}"


def train_minibatch(step: int) -> str:
    """The train minibatch of step `step` the likelihood losses are measured on (PMPO)."""
    return f"train-{step}"


def reflection(step: int) -> str:
    """The train minibatch of step `step` a parent and its child run on (GEPA)."""
    return f"train-reflect-{step}"


def merge_check(step: int) -> str:
    """The dev examples a merged candidate is first checked on at step `step` (GEPA)."""
    return f"dev-merge-{step}"


def tpe_trial(t: int) -> str:
    """The dev minibatch trial `t` of the Bayesian search scores a combination on (MIPRO)."""
    return f"dev-trial-{t}"


def expansion(n: int) -> str:
    """The train minibatch of the n-th expansion step, whose errors a node is
    rewritten from (PromptAgent)."""
    return f"train-expand-{n}"


def batch_trial(step: int, k: int) -> str:
    """The k-th train minibatch of step `step` a candidate must get right (PromptWizard)."""
    return f"train-trial-{step}-{k}"


def example_scan(k: int) -> str:
    """The k-th train chunk the best instruction runs on to find the examples it gets
    wrong, which become its demonstrations (PromptWizard)."""
    return f"train-scan-{k}"


def in_fold(fold: int, split: str) -> str:
    """A split of fold `fold` of k-fold selection, as the run records it ("fold2/dev")."""
    return f"fold{fold}/{split}"
