"""Train the competing-risks model and its baselines out of time; predict the test.

The survival evaluation has its own test window (``survival.split``, ``survival_split``): the
latest snapshots whose K-month follow-up fits in the data (t + K months <= the data's end), so
every horizon up to K is measured. The split is made with models/training/split.py and the purge
widened to the survival window: a training row's outcome window (t, t + K months] ends before the
first test (or validation) snapshot. Too short a span for it falls back to the binary models'
split (``split:``), whose test snapshots have less than K months of follow-up. The binary churn
model baseline is refitted on the same fit and validation slices (``fit_binary_baseline``), so the
two compare out of time on the same rows. ``max_train_rows`` (customer, snapshot) rows of the fit
slice are sampled (seeded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.registry import TIER
from features.spec import CAUSES, EventSpec
from models.spec import SplitSpec, SurvivalSpec, TrainSpec
from models.survival.baselines import AalenJohansenByTier
from models.survival.hazards import HazardModel, SurvivalOutputs, act_by_days, fit_hazard_model
from models.training.boosters import ChurnModel
from models.training.split import Split, SplitError, churn_rows, split_snapshots
from models.training.train import fit_churn_model

log = logging.getLogger(__name__)

ID_COLUMNS = (CUSTOMER_ID, AS_OF, TIER, SURV_MONTHS, SURV_EVENT, SURV_CAUSE)
CHURN_CAUSE = "churn_cause"
EXPECTED_MONTHS = "expected_months_to_churn"


def churn_column(month: int) -> str:
    return f"p_churn_{month}m"


def cause_column(cause: str, month: int) -> str:
    return f"p_{cause}_{month}m"


def survival_column(month: int) -> str:
    return f"survival_{month}m"


@dataclass(frozen=True)
class FittedSurvival:
    model: HazardModel
    baseline: AalenJohansenByTier
    split: Split
    fit_rows: int
    seconds: float
    window: str  # "full_follow_up" (survival.split) or "binary_split" (the fallback)


def outputs_frame(out: SurvivalOutputs, horizons: tuple[int, ...], prefix: str = "") -> dict:
    """The per-customer output columns (as a dict of arrays) of one model's predictions."""
    cols = {}
    for h in horizons:
        cols[prefix + churn_column(h)] = out.churn_by(h)
        for c, cause in enumerate(CAUSES):
            cols[prefix + cause_column(cause, h)] = out.incidence[:, h - 1, c]
    for k in range(1, out.months + 1):
        cols[prefix + survival_column(k)] = out.survival[:, k - 1]
    cols[prefix + EXPECTED_MONTHS] = out.expected_months()
    cols[prefix + CHURN_CAUSE] = out.likely_cause()
    return cols


SCORE_COLUMNS = (
    "p_churn_3m", "p_churn_6m", "p_churn_12m", "p_runoff_12m", "p_refinanced_12m",
    "p_credit_exit_12m", "p_lapsed_12m", CHURN_CAUSE, EXPECTED_MONTHS, "act_by",
)  # fmt: skip


def score_columns(
    out: SurvivalOutputs, as_of: pd.Series, month_days: float, lead_days: int
) -> pd.DataFrame:
    """The `tierwise score` columns of the survival model (SCORE_COLUMNS), one row per input.

    Not yet wired into `tierwise score` or a registered pyfunc (docs/survival.md).
    """
    cols = outputs_frame(out, (3, 6, 12))
    days = act_by_days(out, month_days, lead_days)
    act_by = pd.to_datetime(as_of).to_numpy() + days.astype("timedelta64[D]")
    frame = pd.DataFrame({name: cols[name] for name in SCORE_COLUMNS if name != "act_by"})
    return frame.assign(act_by=pd.Series(act_by).dt.normalize().to_numpy())


def outcome_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with an outcome: active at t and observed for at least one month."""
    return table[table[SURV_MONTHS].fillna(0) >= 1]


def survival_split(
    table: pd.DataFrame, spec: SplitSpec, fallback: SplitSpec, events: EventSpec, end: pd.Timestamp
) -> tuple[Split, str]:
    """The survival evaluation's out-of-time split and its kind (see the module docstring).

    Only snapshots followed for the whole window (t + K months <= ``end``) are candidates, and
    ``spec`` sizes the test set among them. Too short a span for that: the binary models' split
    (``fallback``) with the same purge, and a warning (its K-month metrics are not estimable).
    A span too short for both raises the SplitError of the fallback.
    """
    window = events.month_ends()[-1]
    followed = table[table[AS_OF] + pd.Timedelta(days=window) <= end]
    try:
        return split_snapshots(followed, spec, window), "full_follow_up"
    except SplitError as err:
        log.warning("survival: no test window with %d months of follow-up (%s); using the "
                    "binary models' split", events.months, err)  # fmt: skip
    return split_snapshots(table, fallback, window), "binary_split"


def fit_survival(
    table: pd.DataFrame,
    split: tuple[Split, str],
    spec: SurvivalSpec,
    events: EventSpec,
    features: Mapping[str, str],
) -> FittedSurvival:
    """The hazard model and the Aalen–Johansen baseline, fitted on ``split`` (survival_split)."""
    start = time.perf_counter()
    split, window = split
    fit = outcome_rows(split.rows(table, "fit"))
    if len(fit) > spec.max_train_rows:
        fit = fit.sample(spec.max_train_rows, random_state=spec.seed)
    validation = outcome_rows(split.rows(table, "validation"))
    if len(validation) > spec.max_train_rows // 4:
        validation = validation.sample(spec.max_train_rows // 4, random_state=spec.seed)
    model = fit_hazard_model(fit, validation, list(features), spec, events.months)
    train = outcome_rows(pd.concat([split.rows(table, "fit"), split.rows(table, "validation")]))
    baseline = AalenJohansenByTier.fit(train, events.months, spec.seed)
    seconds = round(time.perf_counter() - start, 2)
    return FittedSurvival(model, baseline, split, len(fit), seconds, window)


def fit_binary_baseline(
    table: pd.DataFrame, split: Split, features: Mapping[str, str], spec: TrainSpec
) -> tuple[ChurnModel, float]:
    """The binary churn model (train stage's recipe, ``train:``), refitted on the survival
    split's fit and validation slices: the out-of-time baseline for the incidence at H. Returns
    the model and its fit time in seconds (same rows, same process: the speed comparison)."""
    start = time.perf_counter()
    fit, validation = (churn_rows(split.rows(table, part)) for part in ("fit", "validation"))
    model, _ = fit_churn_model(fit, validation, features, spec)
    return model, round(time.perf_counter() - start, 2)


def predict_survival_rows(
    model: HazardModel, rows: pd.DataFrame, spec: SurvivalSpec, month_days: float
) -> pd.DataFrame:
    """Any feature rows (no outcome needed): ids and the model's outputs with ``act_by``."""
    rows = rows.reset_index(drop=True)
    out = model.predict(rows)
    cols = outputs_frame(out, spec.horizons_months)
    cols["act_by"] = score_columns(out, rows[AS_OF], month_days, spec.act_lead_days)["act_by"]
    return pd.concat([rows.loc[:, [CUSTOMER_ID, AS_OF, TIER]], pd.DataFrame(cols)], axis=1)


def predict_survival_test(
    fitted: FittedSurvival, table: pd.DataFrame, spec: SurvivalSpec, month_days: float
) -> pd.DataFrame:
    """Every test row with an outcome: ids, outcome, the model's and the baseline's outputs."""
    rows = outcome_rows(fitted.split.rows(table, "test")).reset_index(drop=True)
    out = fitted.model.predict(rows)
    cols = outputs_frame(out, spec.horizons_months)
    cols["act_by"] = score_columns(out, rows[AS_OF], month_days, spec.act_lead_days)["act_by"]
    cols |= outputs_frame(fitted.baseline.predict(rows), spec.horizons_months, prefix="aj_")
    return pd.concat([rows.loc[:, list(ID_COLUMNS)], pd.DataFrame(cols)], axis=1)


def attach_binary(
    predictions: pd.DataFrame, table: pd.DataFrame, binary: ChurnModel
) -> pd.DataFrame:
    """The binary baseline's probability on the same rows (``binary_churn_probability``)."""
    keys = [CUSTOMER_ID, AS_OF]
    rows = predictions[keys].merge(table, on=keys, how="left")
    p = binary.probability(rows) if len(rows) else np.empty(0)
    return predictions.assign(binary_churn_probability=np.asarray(p, dtype=float))
