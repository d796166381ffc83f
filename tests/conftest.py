"""The project's params (the one source of defaults) and tiny hand-made loan histories shared by
the tests. Every setting a test uses comes from ``params_cfg``; a variant is a
``dataclasses.replace`` (or ``config_with``) of it."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any lightgbm import (STACK-NOTES)

import numpy as np
import pandas as pd
import pytest

from features.contract import Tables
from features.spec import Definitions, FeatureSpec
from features.synthetic import generate_world
from pipelines.config import Config, load_defaults

D = pd.Timestamp


def loans_frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (loan_id, customer_id, origination, principal, product, rate, term, closed)."""
    df = pd.DataFrame(
        rows,
        columns=[
            "loan_id",
            "customer_id",
            "origination_date",
            "principal",
            "product",
            "interest_rate",
            "term_months",
            "closed_date",
        ],
    )
    for col in ("origination_date", "closed_date"):
        df[col] = pd.to_datetime(df[col])
    df["term_months"] = df["term_months"].astype("float64")
    return df


@pytest.fixture
def make_loans():
    """The loans_frame factory, for tests that hand-make their own loans."""
    return loans_frame


@pytest.fixture(scope="session")
def params_cfg() -> Config:
    """params.yaml of the repository (``load_defaults``), paths relative to the repository."""
    return load_defaults()


@pytest.fixture(scope="session")
def defs(params_cfg: Config) -> Definitions:
    return params_cfg.defs


@pytest.fixture(scope="session")
def spec(params_cfg: Config) -> FeatureSpec:
    return params_cfg.features


@pytest.fixture(scope="session")
def small_world(params_cfg: Config) -> Tables:
    """The synthetic world the tests share (500 customers over 3 years): generated once."""
    return generate_world(replace(params_cfg.generate, customers=500, years=3, seed=11))


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole run (a JVM start costs ~8 s): tests/pipelines/
    test_spark.py and the score stage's Spark engine share it (spark_session returns the running
    session). Stopped when the test session ends."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ on PATH")
    from pipelines.spark_session import spark_session

    session = spark_session("local[2]", app_name="tierwise-tests")
    yield session
    session.stop()


@pytest.fixture
def tiny_tables() -> Tables:
    """Four customers and a prospect, dated so each definition has an edge case.

    - A: one loan 2022-01-15 .. 2023-01-15 (closes exactly at a snapshot day in one test)
    - B: loans 2021-01-10, 2022-02-01 and 2022-06-30 (core from mid 2022; a renewal)
    - C: one loan 2020-03-01 closed 2020-09-01 (long gone: churned lifecycle)
    - D: prospect with interactions only, converts with a loan on 2022-09-15
    - E: prospect in customers only (Aware)
    """
    loans = loans_frame(
        [
            ("L1", "A", "2022-01-15", 100_000.0, "term_loan", 0.06, 12, "2023-01-15"),
            ("L2", "B", "2021-01-10", 500_000.0, "working_capital", 0.05, 12, "2022-01-10"),
            ("L3", "B", "2022-02-01", 800_000.0, "term_loan", 0.055, 24, None),
            ("L4", "B", "2022-06-30", 300_000.0, "trade_finance", 0.07, 6, "2022-12-30"),
            ("L5", "C", "2020-03-01", 50_000.0, "working_capital", 0.08, 6, "2020-09-01"),
            ("L6", "D", "2022-09-15", 75_000.0, "term_loan", 0.065, 12, None),
        ]
    )
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E"],
            "onboarding_date": pd.to_datetime(
                ["2021-12-01", "2020-12-01", "2020-02-01", "2022-03-01", "2022-05-01"]
            ),
            "segment": ["SME", "corporate", "SME", "SME", "SME"],
        }
    )
    repayments = pd.DataFrame(
        {
            "loan_id": ["L1", "L1", "L1", "L3", "L3"],
            "due_date": pd.to_datetime(
                ["2022-02-15", "2022-03-15", "2022-04-15", "2022-03-01", "2022-04-01"]
            ),
            "amount_due": [9000.0, 9000.0, 9000.0, 35000.0, 35000.0],
            "paid_date": pd.to_datetime(
                ["2022-02-15", "2022-03-25", None, "2022-03-01", "2022-04-01"]
            ),
            "amount_paid": [9000.0, 9000.0, np.nan, 35000.0, 20000.0],
        }
    )
    interactions = pd.DataFrame(
        {
            "customer_id": ["D", "D", "A", "A", "B"],
            "timestamp": pd.to_datetime(
                [
                    "2022-04-01 10:00",
                    "2022-05-02 09:30",
                    "2022-03-10 14:00",
                    "2022-05-20 11:00",
                    "2022-05-05 16:00",
                ]
            ),
            "channel": ["event", "email", "visit", "call", "visit"],
            "kind": ["event", "inquiry", "service", "complaint", "referral"],
        }
    )
    surveys = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B"],
            "survey_date": pd.to_datetime(["2022-02-01", "2022-05-01", "2022-04-01"]),
            "satisfaction": [4.0, 2.0, 5.0],
            "nps": [8.0, 3.0, 10.0],
        }
    )
    return Tables(loans, customers, repayments, interactions, surveys)
