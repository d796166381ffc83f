"""The champion rule: when a newly trained version takes the ``champion`` alias.

Pure: the challenger's metrics and the champion's answer on the same test rows in, a decision
out (docs/models.md, "Promotion"). A champion that cannot be loaded or cannot score the test set
is not beaten: it is an error (``ChampionError``) that names the version and the cause, unless
the caller asked to replace such a champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from features.labels import CHURNED, NEXT_TIER
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.evaluation.metrics import compute_binary_metrics, compute_multiclass_metrics
from models.spec import EvaluateSpec

# Champion rule: +1 higher is better, -1 lower is better (docs/models.md, "Promotion").
PROMOTION_METRICS = {"churn": {"roc_auc": 1, "brier": -1}, "tier": {"log_loss": -1, "accuracy": 1}}


class ChampionError(RuntimeError):
    """The current champion cannot be loaded or cannot score the test set."""


@dataclass(frozen=True)
class ChampionAnswer:
    """What the current champion said on the test rows: its output, or why it could not."""

    version: str
    output: pd.DataFrame | None  # None when the model could not be loaded or could not score
    error: str = ""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


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
    theirs = champion_metrics(kind, rows, champion.output, spec)
    rule = PROMOTION_METRICS[kind]
    figures = ", ".join(f"{m} {challenger[m]} vs {theirs[m]}" for m in rule)
    if beats_champion(challenger, theirs, rule, spec.promotion_tolerance):
        return Decision(
            True, f"beats champion v{champion.version} on the current test set: {figures}"
        )
    return Decision(
        False, f"does not beat champion v{champion.version} on the current test set: {figures}"
    )
