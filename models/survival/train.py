"""Train the competing-risks model and its Aalen–Johansen baseline out of time; predict the test.

The split is the binary models' (models/training/split.py) with the purge widened to the survival
window (K months): a training row's outcome window (t, t + K months] ends before the first test
(or validation) snapshot, and the test snapshots are the binary model's, so the two compare on the
same rows. ``max_train_rows`` (customer, snapshot) rows of the fit slice are sampled (seeded).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.registry import TIER
from features.spec import CAUSES, EventSpec
from models.spec import SplitSpec, SurvivalSpec
from models.survival.baselines import AalenJohansenByTier
from models.survival.hazards import HazardModel, SurvivalOutputs, act_by_days, fit_hazard_model
from models.training.split import Split, split_snapshots

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


def fit_survival(
    table: pd.DataFrame,
    split_spec: SplitSpec,
    spec: SurvivalSpec,
    events: EventSpec,
    features: Mapping[str, str],
) -> FittedSurvival:
    start = time.perf_counter()
    split = split_snapshots(table, split_spec, events.month_ends()[-1])
    fit = outcome_rows(split.rows(table, "fit"))
    if len(fit) > spec.max_train_rows:
        fit = fit.sample(spec.max_train_rows, random_state=spec.seed)
    validation = outcome_rows(split.rows(table, "validation"))
    if len(validation) > spec.max_train_rows // 4:
        validation = validation.sample(spec.max_train_rows // 4, random_state=spec.seed)
    model = fit_hazard_model(fit, validation, list(features), spec, events.months)
    train = outcome_rows(pd.concat([split.rows(table, "fit"), split.rows(table, "validation")]))
    baseline = AalenJohansenByTier.fit(train, events.months, spec.seed)
    return FittedSurvival(model, baseline, split, len(fit), round(time.perf_counter() - start, 2))


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


def attach_binary(predictions: pd.DataFrame, binary: pd.DataFrame, column: str) -> pd.DataFrame:
    """The binary churn model's probability (train stage predictions) on the same rows."""
    keys = [CUSTOMER_ID, AS_OF]
    right = binary.loc[:, [*keys, column]].rename(columns={column: "binary_churn_probability"})
    return predictions.merge(right, on=keys, how="left")
