"""Portfolio KPIs of document 004 (客户忠诚度管理, 四、评估方法) per snapshot, tier and segment.

Grain of the KPI table: one row per (as_of, dimension, level), dimension in {all, tier, segment}.

- retention_rate / churn_rate: among customers active at t with a label, the share that did
  (not) churn in (t, t+H]; predicted_churn_rate is the mean calibrated churn probability.
- CLV (expected margin over ``kpis.clv_horizon_days``): the survival-weighted expected margin
  (``compute_survival_clv``) from the survival model's monthly survival curve when the survival
  stage scored the rows (``survival_book``); otherwise, and for rows it did not score, the
  geometric formula: with p the churn probability over one
  horizon H, V the customer's yearly interest income (the value feature loan_value_<W> over the
  value window W = definitions.value_window_days, times 365 / W), m = margin_share, d the
  yearly discount rate and N = clv_horizon_days // H whole horizons,
      CLV = Σ_{k=1..N} m · V · (H / 365) · (1 - p)^k / (1 + d)^(k · H / 365),
  i.e. a constant-hazard survival from the churn model; a period's margin counts only if the
  customer survives it.
- NPS: 100 × (share of promoters, answer 9–10 − share of detractors, 0–6); CSI: the mean
  satisfaction (1–5) rescaled to 0–100, 100 × (mean − 1) / 4. Both read each customer's latest
  answer dated in (t − survey_window_days, t]; customers without one are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID, NPS, SATISFACTION, SEGMENT, SURVEY_DATE
from features.labels import CHURNED
from features.registry import TIER, value_feature
from models.columns import CHURN_PROBABILITY
from models.spec import KpiSpec

CLV = "clv"
CLV_BASIS = "clv_basis"  # "survival" or "geometric": the formula a row's CLV comes from
UNKNOWN = "unknown"
DIMENSIONS = ("all", TIER, SEGMENT)


@dataclass(frozen=True)
class SurvivalCurves:
    """The survival model's monthly all-cause survival S(1..K) per (customer_id, as_of)."""

    frame: pd.DataFrame  # customer_id, as_of, survival_1m .. survival_Km
    month_days: float

    def curves_of(self, rows: pd.DataFrame) -> np.ndarray:
        """(len(rows), K) curves in ``rows``' order; NaN for rows the model did not score."""
        months = [c for c in self.frame.columns if c.startswith("survival_")]
        keys = rows[[CUSTOMER_ID, AS_OF]]
        merged = keys.merge(self.frame[[CUSTOMER_ID, AS_OF, *months]], how="left",
                            on=[CUSTOMER_ID, AS_OF], validate="one_to_one")  # fmt: skip
        return merged[months].to_numpy(dtype=float)


def compute_clv(
    churn_probability: np.ndarray, yearly_value: np.ndarray, spec: KpiSpec, horizon_days: int
) -> np.ndarray:
    """Expected discounted margin over the CLV horizon (formula in the module docstring)."""
    periods = np.arange(1, spec.clv_horizon_days // horizon_days + 1)
    years = periods * horizon_days / 365.0
    survive = (1.0 - np.asarray(churn_probability, float))[:, None] ** periods[None, :]
    weights = survive / (1.0 + spec.discount_rate) ** years[None, :]
    per_period = spec.margin_share * np.asarray(yearly_value, float) * horizon_days / 365.0
    return per_period * weights.sum(axis=1)


def compute_nps(answers: pd.Series) -> float:
    answers = answers.dropna()
    if answers.empty:
        return np.nan
    return float(100.0 * ((answers >= 9).mean() - (answers <= 6).mean()))


def compute_csi(satisfaction: pd.Series) -> float:
    satisfaction = satisfaction.dropna()
    return float(100.0 * (satisfaction.mean() - 1.0) / 4.0) if len(satisfaction) else np.nan


def _latest(rows: pd.DataFrame, surveys: pd.DataFrame, column: str, window: int) -> pd.Series:
    """Each row's latest non-missing ``column`` answer dated in (as_of - window, as_of]."""
    answers = surveys.loc[surveys[column].notna(), [CUSTOMER_ID, SURVEY_DATE, column]]
    answers = answers.astype({SURVEY_DATE: "datetime64[ns]"}).sort_values(
        SURVEY_DATE, kind="stable"
    )
    keys = rows[[CUSTOMER_ID, AS_OF]].astype({AS_OF: "datetime64[ns]"}).reset_index()
    keys = keys.sort_values(AS_OF, kind="stable")
    within = pd.Timedelta(days=window - 1)  # whole days: survey_date > as_of - window
    merged = pd.merge_asof(keys, answers, left_on=AS_OF, right_on=SURVEY_DATE, by=CUSTOMER_ID,
                           tolerance=within, direction="backward")  # fmt: skip
    return merged.set_index("index")[column].reindex(rows.index)


def kpi_rows(
    predictions: pd.DataFrame,
    feature_table: pd.DataFrame,
    customers: pd.DataFrame | None,
    surveys: pd.DataFrame | None,
    spec: KpiSpec,
    horizon_days: int,
    survival: SurvivalCurves | None = None,
) -> pd.DataFrame:
    """Test rows with segment, CLV (active customers) and their latest survey answers.

    ``survival``: the survival model's monthly curves of (some of) the rows: their CLV is the
    survival-weighted one (``CLV_BASIS`` says which formula each row used)."""
    value_column = value_feature(spec.value_window_days)
    value = feature_table[[CUSTOMER_ID, AS_OF, value_column]]
    rows = predictions.merge(value, on=[CUSTOMER_ID, AS_OF], how="left", validate="one_to_one")
    segment = pd.Series(UNKNOWN, index=rows.index)
    if customers is not None and SEGMENT in customers.columns:
        by_id = customers.set_index(CUSTOMER_ID)[SEGMENT]
        segment = rows[CUSTOMER_ID].map(by_id).fillna(UNKNOWN)
    p, value = rows[CHURN_PROBABILITY].fillna(1.0), rows[value_column].fillna(0.0)
    yearly = value.to_numpy() * (365.0 / spec.value_window_days)  # exactly 1.0 for 365 days
    clv = compute_clv(p.to_numpy(), yearly, spec, horizon_days)
    basis = np.full(len(rows), "geometric", dtype=object)
    if survival is not None:
        curve = survival.curves_of(rows)
        known = ~np.isnan(curve).any(axis=1)
        weighted = compute_survival_clv(curve[known], yearly[known], spec, survival.month_days)
        clv[known], basis[known] = weighted, "survival"
    active = rows[CHURNED].notna()
    rows = rows.assign(
        **{SEGMENT: segment.astype(str), CLV: np.where(active, clv, np.nan),
           CLV_BASIS: np.where(active, basis, None)}
    )  # fmt: skip
    for column in (NPS, SATISFACTION):
        answered = surveys is not None and column in surveys.columns
        latest = _latest(rows, surveys, column, spec.survey_window_days) if answered else np.nan
        rows = rows.assign(**{column: latest})
    return rows


def _summarise(group: pd.DataFrame) -> pd.Series:
    active = group[group[CHURNED].notna()]
    return pd.Series(
        {
            "customers": len(group),
            "active": len(active),
            "churn_rate": active[CHURNED].mean(),
            "retention_rate": 1.0 - active[CHURNED].mean(),
            "predicted_churn_rate": active[CHURN_PROBABILITY].mean(),
            "clv_mean": active[CLV].mean(),
            "clv_total": active[CLV].sum(),
            "survey_answers": int(group[NPS].notna().sum()),
            "nps": compute_nps(group[NPS]),
            "csi": compute_csi(group[SATISFACTION]),
        }
    )


def compute_kpis(rows: pd.DataFrame) -> pd.DataFrame:
    """The KPI table from ``kpi_rows``: per snapshot overall, by tier and by segment."""
    parts = []
    for dimension in DIMENSIONS:
        level = pd.Series("all", index=rows.index) if dimension == "all" else rows[dimension]
        keyed = rows.assign(dimension=dimension, level=level.astype(str))
        grouped = keyed.groupby([AS_OF, "dimension", "level"], sort=True)
        parts.append(grouped.apply(_summarise, include_groups=False).reset_index())
    table = pd.concat(parts, ignore_index=True)
    return table.astype({"customers": int, "active": int, "survey_answers": int})


def kpi_headline(rows: pd.DataFrame) -> dict:
    """One number per KPI over all test rows (the DVC metric)."""
    summary = _summarise(rows)
    return {k: (None if pd.isna(v) else round(float(v), 6)) for k, v in summary.items()}


def compute_survival_clv(
    survival: np.ndarray, yearly_value: np.ndarray, spec: KpiSpec, month_days: float
) -> np.ndarray:
    """Survival-weighted CLV: the expected discounted margin over ``kpis.clv_horizon_days`` from
    the monthly all-cause survival curve S(1..K) of the survival model (docs/survival.md),

        CLV = Σ_{k=1..N} m · V · (month_days / 365) · S(k) / (1 + d)^(k · month_days / 365),

    N = clv_horizon_days / month_days months; past K the curve continues with its last monthly
    hazard (a constant hazard beyond the model's window)."""
    survival = np.clip(np.asarray(survival, float), 0.0, 1.0)
    K = survival.shape[1]
    months = np.arange(1, int(spec.clv_horizon_days // month_days) + 1)
    previous = survival[:, -2] if K > 1 else np.ones(len(survival))
    step = np.divide(survival[:, -1], previous, out=np.zeros(len(survival)), where=previous > 0)
    beyond = survival[:, -1:] * step[:, None] ** np.maximum(months - K, 0)[None, :]
    curve = np.where(months[None, :] <= K, survival[:, np.minimum(months, K) - 1], beyond)
    years = months * month_days / 365.0
    weights = curve / (1.0 + spec.discount_rate) ** years[None, :]
    per_month = spec.margin_share * np.asarray(yearly_value, float) * month_days / 365.0
    return per_month * weights.sum(axis=1)
