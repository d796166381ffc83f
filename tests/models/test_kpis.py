"""Document 004's KPIs on hand-made rows: CLV formula, NPS, CSI, retention, the survey window."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.evaluation.kpis import (
    compute_clv,
    compute_csi,
    compute_kpis,
    compute_nps,
    kpi_headline,
    kpi_rows,
)
from models.spec import KpiSpec

D = pd.Timestamp


@pytest.fixture(scope="module")
def kpi_spec(params_cfg) -> KpiSpec:
    return params_cfg.kpis


def test_clv_sums_discounted_survival_weighted_margin(kpi_spec):
    spec = replace(kpi_spec, clv_horizon_days=360, discount_rate=0.0, margin_share=0.5)
    # two horizons of 180 days, p = 0.5: 0.5 * 365 * 180/365 * (0.5 + 0.25)
    assert compute_clv(np.array([0.5]), np.array([365.0]), spec, 180)[0] == pytest.approx(67.5)
    assert compute_clv(np.array([1.0]), np.array([365.0]), spec, 180)[0] == 0.0
    assert compute_clv(np.array([0.0]), np.array([365.0]), spec, 180)[0] == pytest.approx(180.0)


def test_clv_discounts_by_elapsed_years(kpi_spec):
    spec = replace(kpi_spec, clv_horizon_days=365, discount_rate=0.1, margin_share=1.0)
    value = compute_clv(np.array([0.0]), np.array([1000.0]), spec, 365)[0]
    assert value == pytest.approx(1000.0 / 1.1)


def test_nps_and_csi():
    assert compute_nps(pd.Series([10, 9, 8, 0, np.nan])) == pytest.approx(25.0)
    assert compute_csi(pd.Series([5.0, 1.0, np.nan])) == pytest.approx(50.0)
    assert np.isnan(compute_nps(pd.Series([], dtype=float)))
    assert np.isnan(compute_csi(pd.Series([np.nan])))


def predictions_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "A"],
            "as_of": [D("2024-01-31")] * 3 + [D("2024-02-29")],
            "tier": ["core", "ordinary", "potential", "core"],
            "churned": [0.0, 1.0, np.nan, 0.0],
            "churn_probability": [0.1, 0.6, np.nan, 0.2],
        }
    )


def feature_rows() -> pd.DataFrame:
    return predictions_frame()[["customer_id", "as_of"]].assign(
        loan_value_365=[100.0, 50.0, 0.0, 100.0]
    )


def test_kpi_rows_read_the_latest_answer_in_the_window(kpi_spec):
    surveys = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "B", "C"],
            "survey_date": [
                D("2023-03-01"),
                D("2023-06-01"),
                D("2024-02-15"),
                D("2022-12-31"),
                D("2024-01-31"),
            ],
            "satisfaction": [2.0, 4.0, 1.0, 5.0, np.nan],
            "nps": [3.0, 9.0, 0.0, 10.0, 7.0],
        }
    )
    customers = pd.DataFrame({"customer_id": ["A", "B"], "segment": ["sme", "corporate"]})
    rows = kpi_rows(predictions_frame(), feature_rows(), customers, surveys, kpi_spec, 180)
    # A at 2024-01-31: the 2023-06-01 answer (the 2024-02-15 one is in the future)
    assert rows["nps"].tolist()[:3] == [9.0, pytest.approx(np.nan, nan_ok=True), 7.0]
    assert rows["satisfaction"].iloc[0] == 4.0
    assert np.isnan(rows["satisfaction"].iloc[2])  # C answered NPS only
    assert rows["nps"].iloc[3] == 0.0  # A at 2024-02-29 sees the 2024-02-15 answer
    assert rows["segment"].tolist() == ["sme", "corporate", "unknown", "sme"]
    assert np.isnan(rows["clv"].iloc[2])  # not active: no CLV
    assert rows["clv"].iloc[0] > rows["clv"].iloc[1]


def test_kpi_table_grain_and_values(kpi_spec):
    rows = kpi_rows(predictions_frame(), feature_rows(), None, None, kpi_spec, 180)
    kpis = compute_kpis(rows)
    assert not kpis.duplicated(["as_of", "dimension", "level"]).any()
    first = kpis[(kpis.as_of == D("2024-01-31")) & (kpis.dimension == "all")].iloc[0]
    assert first["customers"] == 3 and first["active"] == 2
    assert first["churn_rate"] == 0.5 and first["retention_rate"] == 0.5
    assert first["predicted_churn_rate"] == pytest.approx(0.35)
    assert first["survey_answers"] == 0 and np.isnan(first["nps"])
    assert set(kpis["dimension"]) == {"all", "tier", "segment"}
    headline = kpi_headline(rows)
    assert headline["active"] == 3 and headline["churn_rate"] == pytest.approx(1 / 3)
    assert headline["nps"] is None


def test_clv_reads_the_value_window_feature_and_annualises_it(kpi_spec):
    """The value feature follows definitions.value_window_days; CLV uses its yearly rate."""
    assert kpi_spec.value_window_days == 365  # the params: the factor is exactly 1
    yearly = kpi_rows(predictions_frame(), feature_rows(), None, None, kpi_spec, 180)
    half = replace(kpi_spec, value_window_days=180)
    features = feature_rows().rename(columns={"loan_value_365": "loan_value_180"})
    halved = features.assign(loan_value_180=features["loan_value_180"] * 180 / 365)
    rows = kpi_rows(predictions_frame(), halved, None, None, half, 180)
    np.testing.assert_allclose(rows["clv"], yearly["clv"], rtol=1e-12)
    with pytest.raises(KeyError, match="loan_value_180"):
        kpi_rows(predictions_frame(), feature_rows(), None, None, half, 180)


def test_kpi_clv_is_survival_weighted_where_the_survival_model_scored_the_row(kpi_spec):
    """The KPI table's CLV comes from the survival curve (docs/definitions.md, "CLV"); a row the
    survival stage did not score keeps the geometric CLV, and each row says which it used."""
    from models.evaluation.kpis import SurvivalCurves, compute_survival_clv

    curve = np.array([[0.99**k for k in range(1, 13)], [0.7**k for k in range(1, 13)]])
    book = pd.DataFrame({"customer_id": ["A", "B"], "as_of": [D("2024-01-31")] * 2})
    book = book.assign(**{f"survival_{k}m": curve[:, k - 1] for k in range(1, 13)})
    geometric = kpi_rows(predictions_frame(), feature_rows(), None, None, kpi_spec, 180)
    rows = kpi_rows(
        predictions_frame(), feature_rows(), None, None, kpi_spec, 180,
        SurvivalCurves(book, 30.4375),
    )  # fmt: skip
    expected = compute_survival_clv(curve, np.array([100.0, 50.0]), kpi_spec, 30.4375)
    np.testing.assert_allclose(rows["clv"].to_numpy()[:2], expected)
    assert list(rows["clv_basis"]) == ["survival", "survival", None, "geometric"]
    assert np.isnan(rows["clv"].iloc[2])  # C is not active at t: no CLV either way
    assert rows["clv"].iloc[3] == geometric["clv"].iloc[3]
    assert rows["clv"].iloc[1] < rows["clv"].iloc[0]  # the steeper curve is worth less
