"""The synthetic world's bank-like shapes: left-truncated extracts (generate.extract_start), long
project-finance maturities, bullet loans and yearly-renewed credit lines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import yaml

import features.contract as fc
from features.synthetic import PRODUCTS, extract_tables, generate_world
from features.validation import validate_tables
from pipelines.config import ConfigError, config_with, load_config, load_defaults

BASE = dataclasses.replace(load_defaults().generate, customers=700, years=4, start="2019-01-01",
                           seed=13)  # fmt: skip
SHAPES = dict(long_maturity_share=1.0, bullet_share=0.5, revolving_share=0.5,
              segment_shares=(0.4, 0.3, 0.3))  # fmt: skip
FIRST = pd.Timestamp("2021-01-01")


@pytest.fixture(scope="module")
def full() -> fc.Tables:
    return generate_world(dataclasses.replace(BASE, **SHAPES))


@pytest.fixture(scope="module")
def extract() -> fc.Tables:
    return generate_world(dataclasses.replace(BASE, **SHAPES, extract_start=str(FIRST.date())))


# --- extract_start -----------------------------------------------------------------------------


def test_the_extract_is_the_full_history_cut_at_its_first_day(full, extract):
    expected = extract_tables(full, FIRST)
    for name, df in expected.present().items():
        pd.testing.assert_frame_equal(extract.get(name), df, obj=name)
    loans = extract.loans
    assert (loans[fc.CLOSED_DATE].isna() | (loans[fc.CLOSED_DATE] >= FIRST)).all()
    assert len(loans) < len(full.loans)  # loans closed before the extract are gone
    for name, col in ((fc.REPAYMENTS, fc.DUE_DATE), (fc.INTERACTIONS, fc.TIMESTAMP),
                      (fc.SURVEYS, fc.SURVEY_DATE)):  # fmt: skip
        assert extract.get(name)[col].min() >= FIRST, name
        assert full.get(name)[col].min() < FIRST, name  # ... and were there before


def test_the_extract_is_left_truncated_with_true_origination_dates(full, extract):
    before = extract.loans[extract.loans[fc.ORIGINATION_DATE] < FIRST]
    assert len(before) > 0.2 * len(extract.loans)  # the book open at the extract start
    truth = full.loans.set_index(fc.LOAN_ID).loc[before[fc.LOAN_ID], fc.ORIGINATION_DATE]
    assert (truth.to_numpy() == before[fc.ORIGINATION_DATE].to_numpy()).all()
    # no installment before the extract start, although these loans had some
    paid = extract.repayments[extract.repayments[fc.LOAN_ID].isin(before[fc.LOAN_ID])]
    assert paid[fc.DUE_DATE].min() >= FIRST


def test_the_extract_names_only_customers_it_holds(extract):
    named = set(extract.loans[fc.CUSTOMER_ID]) | set(extract.interactions[fc.CUSTOMER_ID])
    assert set(extract.customers[fc.CUSTOMER_ID]) == named | set(extract.surveys[fc.CUSTOMER_ID])


def test_the_extract_and_the_shapes_pass_validation(extract):
    typed, report = validate_tables(extract.present(), end=BASE.end)
    assert len(typed.loans) == len(extract.loans)
    assert report.warnings == []


@pytest.mark.parametrize("bad", ["2018-06-01", "2019-01-01", "2023-01-01", "next year"])
def test_an_extract_start_outside_the_world_is_refused(bad):
    with pytest.raises(ValueError, match="extract_start|not a date"):
        dataclasses.replace(BASE, extract_start=bad)


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1)])
def test_a_bad_segment_mix_is_refused(bad):
    with pytest.raises(ValueError, match="segment_shares"):
        dataclasses.replace(BASE, segment_shares=bad)


def test_params_check_the_new_keys(tmp_path):
    cfg = load_defaults()
    assert cfg.generate.extract_start == "" and cfg.generate.bullet_share == 0.0
    assert config_with(cfg, generate={"extract_start": "2022-01-01"}).generate.extract_start
    with pytest.raises(ConfigError, match="generate.*extract_start"):
        config_with(cfg, generate={"extract_start": "2019-01-01"})
    with pytest.raises(ConfigError, match="generate.*segment_shares"):
        config_with(cfg, generate={"segment_shares": [0.9, 0.2, 0.1]})
    with pytest.raises(ConfigError, match="generate.revolving_share"):
        config_with(cfg, generate={"revolving_share": "often"})
    params = yaml.safe_load((cfg.root / "params.yaml").read_text())
    params["generate"]["extract_start"] = pd.Timestamp("2021-01-01").date()  # YAML's unquoted date
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert load_config(tmp_path / "params.yaml").generate.extract_start == "2021-01-01"


# --- loan shapes -------------------------------------------------------------------------------


def _installments(tables: fc.Tables, product: str) -> pd.DataFrame:
    loans = tables.loans[tables.loans[fc.PRODUCT] == product]
    return tables.repayments.merge(loans, on=fc.LOAN_ID).sort_values([fc.LOAN_ID, fc.DUE_DATE])


def test_the_default_world_has_annuities_of_the_documented_terms_only():
    tables = generate_world(BASE)
    assert set(tables.loans[fc.PRODUCT]) <= set(PRODUCTS)
    assert tables.loans[fc.TERM_MONTHS].max() <= 60
    rows = _installments(tables, "term_loan")
    assert (rows.groupby(fc.LOAN_ID)[fc.AMOUNT_DUE].nunique() == 1).all()  # level annuities


def test_project_finance_runs_ten_to_fifteen_years(full):
    pf = full.loans[full.loans[fc.PRODUCT] == "project_finance"]
    assert len(pf) > 20 and set(pf[fc.TERM_MONTHS]) <= {120, 144, 180}
    closed = pf[pf[fc.CLOSED_DATE].notna()]  # only by prepayment: none can mature in 4 years
    maturity = closed[fc.ORIGINATION_DATE] + pd.to_timedelta(closed[fc.TERM_MONTHS] * 30, "D")
    assert (closed[fc.CLOSED_DATE] < maturity).all()


def _interest_only(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per installment: is it the interest alone; is it principal + interest, due at closing."""
    interest = (rows[fc.PRINCIPAL] * rows[fc.INTEREST_RATE] / 12).round(2)
    level = pd.Series(np.isclose(rows[fc.AMOUNT_DUE], interest, rtol=1e-3), rows.index)
    balloon = np.isclose(rows[fc.AMOUNT_DUE], rows[fc.PRINCIPAL] + interest, rtol=1e-3)
    return level, (rows[fc.DUE_DATE] == rows[fc.CLOSED_DATE]) & balloon


def test_bullet_loans_pay_interest_then_principal_at_maturity(full):
    rows = _installments(full, "term_loan")
    level, balloon = _interest_only(rows)
    bullet = level.groupby(rows[fc.LOAN_ID]).any()
    assert 0.3 < bullet.mean() < 0.7  # bullet_share = 0.5 of term loans
    bullets = rows[fc.LOAN_ID].isin(bullet[bullet].index)
    assert (level | balloon)[bullets].all()
    assert balloon[bullets].any()  # some matured and repaid their principal
    assert not balloon[~bullets].any()  # annuities never do


def _renewal_rate(loans: pd.DataFrame, product: str) -> float:
    """Share of matured loans of ``product`` followed by one of the same customer and product
    starting on their closing day."""
    own = loans[loans[fc.PRODUCT] == product]
    matured = own[own[fc.CLOSED_DATE].notna()]
    months = (matured[fc.CLOSED_DATE].dt.to_period("M") - matured[fc.ORIGINATION_DATE]
              .dt.to_period("M")).map(lambda d: d.n)  # fmt: skip
    matured = matured[months == matured[fc.TERM_MONTHS]]
    starts = own.set_index([fc.CUSTOMER_ID, fc.ORIGINATION_DATE]).index
    return float(pd.MultiIndex.from_frame(matured[[fc.CUSTOMER_ID, fc.CLOSED_DATE]])
                 .isin(starts).mean())  # fmt: skip


def test_credit_lines_run_a_year_and_are_renewed_more_often(full):
    lines = full.loans[full.loans[fc.PRODUCT] == "credit_line"]
    working = full.loans[full.loans[fc.PRODUCT] == "working_capital"]
    assert len(lines) > 50 and len(working) > 50
    assert (lines[fc.TERM_MONTHS] == 12).all()
    level, balloon = _interest_only(_installments(full, "credit_line"))
    assert (level | balloon).all() and balloon.any()
    assert _renewal_rate(full.loans, "credit_line") > _renewal_rate(full.loans, "working_capital")


def test_another_segment_mix_changes_who_the_customers_are(full):
    shares = full.customers[fc.SEGMENT].value_counts(normalize=True)
    assert shares["project_sponsor"] > 0.2  # 0.3 asked, 0.08 in the default world
