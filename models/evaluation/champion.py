"""The champion rule: when a newly trained version takes the ``champion`` alias.

Pure: the challenger's metrics and the champion's answer on the same test rows in, a decision
out (docs/models.md, "Promotion"). A champion that cannot be loaded or cannot score the test set
is not beaten: it is an error (``ChampionError``) that names the version and the cause, unless
the caller asked to replace such a champion.

Like with like (docs/models.md, "Tasks"): a challenger is compared only with a champion of its
own task (``decide_for_task``). The plain ``champion`` alias belongs to the champion's task; a
challenger of another task can at most take its task's alias ``champion-<task id>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from features.labels import CHURNED, NEXT_TIER
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.evaluation.errors import ChampionError
from models.evaluation.metrics import compute_binary_metrics, compute_multiclass_metrics
from models.spec import EvaluateSpec

# Champion rule: +1 higher is better, -1 lower is better (docs/models.md, "Promotion").
PROMOTION_METRICS = {"churn": {"roc_auc": 1, "brier": -1}, "tier": {"log_loss": -1, "accuracy": 1}}


@dataclass(frozen=True)
class ChampionAnswer:
    """What the current champion said on the test rows: its output, or why it could not."""

    version: str
    output: pd.DataFrame | None  # None when the model could not be loaded or could not score
    error: str = ""


@dataclass(frozen=True)
class Decision:
    promote: bool  # takes the plain ``champion`` alias
    reason: str
    task_champion: bool | None = None  # takes ``champion-<task id>``; None: same as promote

    @property
    def takes_task_alias(self) -> bool:
        return self.promote if self.task_champion is None else self.task_champion


@dataclass(frozen=True)
class Holder:
    """Who holds an alias now, and the task that version records (None: it records none)."""

    version: str
    task: str | None


def beats_champion(
    challenger: Mapping[str, float | None],
    champion: Mapping[str, float | None],
    directions: Mapping[str, int],
    tolerance: float = 0.0,
) -> bool:
    """True when the challenger is not worse than the champion on any rule metric (by more than
    ``tolerance``) and strictly better on at least one. A metric the champion lacks counts as
    beaten; one the challenger lacks, as worse."""
    better = False
    for name, sign in directions.items():
        new, old = challenger.get(name), champion.get(name)
        if new is None:
            return False
        if old is None:
            better = True
            continue
        gain = sign * (new - old)
        if gain < -tolerance:
            return False
        better = better or gain > 0
    return better


def champion_metrics(
    kind: str, rows: pd.DataFrame, output: pd.DataFrame, spec: EvaluateSpec
) -> dict:
    """The rule's metrics of a champion's output on the test rows."""
    if kind == "churn":
        return compute_binary_metrics(rows[CHURNED], output[CHURN_PROBABILITY], spec)
    return compute_multiclass_metrics(rows[NEXT_TIER], output[list(NEXT_TIER_COLUMNS)].to_numpy())


def decide_promotion(
    kind: str,
    rows: pd.DataFrame,
    challenger: Mapping[str, float | None],
    champion: ChampionAnswer | None,
    spec: EvaluateSpec,
) -> Decision:
    """Whether the new version of ``kind`` becomes champion, and why.

    ``champion`` None: there is none yet. A champion without output raises ``ChampionError``
    unless ``spec.replace_broken_champion`` is set, in which case the new version takes over
    and the reason says so.
    """
    measure = lambda output: champion_metrics(kind, rows, output, spec)  # noqa: E731
    return decide_on(challenger, champion, measure, PROMOTION_METRICS[kind], spec)


def decide_on(
    challenger: Mapping[str, float | None],
    champion: ChampionAnswer | None,
    measure: Callable[[pd.DataFrame], Mapping[str, float | None]],
    rule: Mapping[str, int],
    spec: EvaluateSpec,
) -> Decision:
    """``decide_promotion`` for any rule: ``measure`` turns the champion's output on the test
    rows into the rule's metrics (the uplift model's Qini: pipelines/uplift.py)."""
    if champion is None:
        return Decision(True, "no champion yet")
    if champion.output is None:
        why = f"champion v{champion.version} cannot score the current test set ({champion.error})"
        if not spec.replace_broken_champion:
            raise ChampionError(
                f"{why}; fix it, promote a version by hand (tierwise promote), or set "
                "evaluate.replace_broken_champion: true to let this run replace it"
            )
        return Decision(True, f"{why}; replaced as evaluate.replace_broken_champion allows")
    theirs = measure(champion.output)
    figures = ", ".join(f"{m} {challenger[m]} vs {theirs[m]}" for m in rule)
    if beats_champion(challenger, theirs, rule, spec.promotion_tolerance):
        return Decision(
            True, f"beats champion v{champion.version} on the current test set: {figures}"
        )
    return Decision(
        False, f"does not beat champion v{champion.version} on the current test set: {figures}"
    )


def decide_for_task(
    task: str,
    champion: Holder | None,
    answer: ChampionAnswer | None,
    decide,
) -> Decision:
    """The decision of a challenger of ``task``, given who holds ``champion``.

    ``answer``: what the champion of ``task`` said on the challenger's test rows (the plain
    champion's when it is of ``task``, else the holder of ``champion-<task>``'s; None when there
    is none). ``decide(answer)`` is ``decide_promotion`` for these rows. The plain alias moves
    only within the champion's task; no comparison is ever made across tasks.
    """
    if champion is None:
        return Decision(True, "no champion yet", True)
    if champion.task == task:
        return decide(answer)
    whose = ("records no task (registered before task tags; promote by hand to change it)"
             if champion.task is None else f"is for task {champion.task}")  # fmt: skip
    within = decide(answer)
    note = f"champion v{champion.version} {whose}, this version is for task {task}: not compared"
    return Decision(False, f"{note}; within its task: {within.reason}", within.promote)


def without_promotion(decision: Decision, why: str) -> Decision:
    """The same comparison, no alias moved (an experiment that may not promote)."""
    return Decision(False, f"{decision.reason}; not promoted: {why}", False)
