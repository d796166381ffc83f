"""The input contract: which tables tierwise reads, their columns and types.

A data directory holds one file per table, ``NAME.parquet`` or ``NAME.csv``. Only ``loans`` is
required. This module is the single place where table and column names are spelled; every other
module imports the constants from here. docs/data-contract.md is the prose version.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd

# --- table names -------------------------------------------------------------------------------
LOANS = "loans"
CUSTOMERS = "customers"
REPAYMENTS = "repayments"
INTERACTIONS = "interactions"
SURVEYS = "surveys"
CAMPAIGNS = "campaigns"
TABLE_NAMES = (LOANS, CUSTOMERS, REPAYMENTS, INTERACTIONS, SURVEYS, CAMPAIGNS)

# --- column names ------------------------------------------------------------------------------
CUSTOMER_ID = "customer_id"
LOAN_ID = "loan_id"
ORIGINATION_DATE = "origination_date"
PRINCIPAL = "principal"
PRODUCT = "product"
INTEREST_RATE = "interest_rate"
TERM_MONTHS = "term_months"
CLOSED_DATE = "closed_date"
CLOSE_REASON = "close_reason"
ONBOARDING_DATE = "onboarding_date"
SEGMENT = "segment"
INDUSTRY = "industry"
REGION = "region"
DUE_DATE = "due_date"
AMOUNT_DUE = "amount_due"
PAID_DATE = "paid_date"
AMOUNT_PAID = "amount_paid"
TIMESTAMP = "timestamp"
CHANNEL = "channel"
KIND = "kind"
SURVEY_DATE = "survey_date"
SATISFACTION = "satisfaction"
NPS = "nps"
CAMPAIGN_DATE = "date"
STRATEGY_ID = "strategy_id"
ARM = "arm"
COST = "cost"

# Grain of every derived table: one row per (customer_id, as_of).
AS_OF = "as_of"

# Interaction vocabulary. Kinds outside KNOWN_KINDS are mapped to OTHER_KIND (a soft warning).
KNOWN_KINDS = ("inquiry", "complaint", "referral", "service", "marketing", "event")
OTHER_KIND = "other"
# Channels on which a relationship manager speaks with the customer in person or by phone.
RM_CHANNELS = ("visit", "call")
KNOWN_CHANNELS = ("visit", "call", "email", "event", "online")

# Why a loan closed (optional loans.close_reason). Values outside CLOSE_REASONS are mapped to
# OTHER_CLOSE_REASON (a soft warning); docs/definitions.md maps each to a churn cause.
CLOSE_REASONS = ("matured", "prepaid", "refinanced", "written_off", "restructured", "other")
OTHER_CLOSE_REASON = "other"

# Campaign arms (campaigns.arm): a randomised campaign keeps a control group that gets nothing.
TREATED, CONTROL = "treated", "control"
ARMS = (TREATED, CONTROL)

SATISFACTION_RANGE = (1, 5)
NPS_RANGE = (0, 10)

ColumnKind = Literal["str", "date", "timestamp", "float", "int"]


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: ColumnKind
    required: bool = True  # the column must be present in the file
    nullable: bool = False  # empty cells are allowed
    unique: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    required: bool
    columns: tuple[ColumnSpec, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


C = ColumnSpec
CONTRACT: dict[str, TableSpec] = {
    LOANS: TableSpec(
        LOANS,
        required=True,
        columns=(
            C(LOAN_ID, "str", unique=True),
            C(CUSTOMER_ID, "str"),
            C(ORIGINATION_DATE, "date"),
            C(PRINCIPAL, "float"),
            C(PRODUCT, "str", required=False, nullable=True),
            C(INTEREST_RATE, "float", required=False, nullable=True),
            C(TERM_MONTHS, "int", required=False, nullable=True),
            C(CLOSED_DATE, "date", required=False, nullable=True),
            C(CLOSE_REASON, "str", required=False, nullable=True),
        ),
    ),
    CUSTOMERS: TableSpec(
        CUSTOMERS,
        required=False,
        columns=(
            C(CUSTOMER_ID, "str", unique=True),
            C(ONBOARDING_DATE, "date"),
            C(SEGMENT, "str", required=False, nullable=True),
            C(INDUSTRY, "str", required=False, nullable=True),
            C(REGION, "str", required=False, nullable=True),
        ),
    ),
    REPAYMENTS: TableSpec(
        REPAYMENTS,
        required=False,
        columns=(
            C(LOAN_ID, "str"),
            C(DUE_DATE, "date"),
            C(AMOUNT_DUE, "float"),
            C(PAID_DATE, "date", nullable=True),
            C(AMOUNT_PAID, "float", nullable=True),
        ),
    ),
    INTERACTIONS: TableSpec(
        INTERACTIONS,
        required=False,
        columns=(
            C(CUSTOMER_ID, "str"),
            C(TIMESTAMP, "timestamp"),
            C(CHANNEL, "str"),
            C(KIND, "str"),
        ),
    ),
    SURVEYS: TableSpec(
        SURVEYS,
        required=False,
        columns=(
            C(CUSTOMER_ID, "str"),
            C(SURVEY_DATE, "date"),
            C(SATISFACTION, "float", nullable=True),
            C(NPS, "float", nullable=True),
        ),
    ),
    # Retention campaigns (docs/data-contract.md): who was selected on which day for which
    # strategy of the catalog, and whether the customer was treated or kept as a control.
    CAMPAIGNS: TableSpec(
        CAMPAIGNS,
        required=False,
        columns=(
            C(CUSTOMER_ID, "str"),
            C(CAMPAIGN_DATE, "date"),
            C(STRATEGY_ID, "str"),
            C(ARM, "str"),
            C(COST, "float", required=False, nullable=True),
        ),
    ),
}
del C


@dataclass(frozen=True)
class Tables:
    """Typed, validated input tables. Optional tables are ``None`` when absent.

    Dates are ``datetime64[ns]`` at midnight; interaction timestamps keep their time of day.
    Optional columns that were absent from the file are absent here too.
    """

    loans: pd.DataFrame
    customers: pd.DataFrame | None = None
    repayments: pd.DataFrame | None = None
    interactions: pd.DataFrame | None = None
    surveys: pd.DataFrame | None = None
    campaigns: pd.DataFrame | None = None

    def get(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)

    def for_customers(self, customer_ids) -> Tables:
        """The same tables restricted to some customers (repayments follow their loans)."""
        keep = pd.Index(customer_ids)
        loans = self.loans[self.loans[CUSTOMER_ID].isin(keep)]
        parts = {
            name: df[df[CUSTOMER_ID].isin(keep)]
            for name, df in self.present().items()
            if name not in (LOANS, REPAYMENTS)
        }
        if self.repayments is not None:
            parts[REPAYMENTS] = self.repayments[self.repayments[LOAN_ID].isin(loans[LOAN_ID])]
        return Tables(loans=loans, **parts)

    def present(self) -> dict[str, pd.DataFrame]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


class CustomerSlices:
    """``Tables.for_customers`` for runs of consecutive customers, fast enough to call per slice.

    Each row's customer is located once, as a position in the sorted ``ids`` (repayments through
    their loan); a slice of ``ids[start:stop]`` is then a range test on integers instead of a
    lookup of every id, which at a million customers saves seconds per slice.
    """

    def __init__(self, tables: Tables, ids: pd.Index) -> None:
        self.tables = tables
        self.positions = {
            name: ids.get_indexer(df[CUSTOMER_ID])
            for name, df in tables.present().items()
            if name != REPAYMENTS
        }
        if tables.repayments is not None:
            loan = pd.Index(tables.loans[LOAN_ID]).get_indexer(tables.repayments[LOAN_ID])
            owner = np.append(self.positions[LOANS], -1)  # an unknown loan (-1) has no owner
            self.positions[REPAYMENTS] = owner[loan]

    def slice(self, start: int, stop: int) -> Tables:
        """The tables restricted to the customers ``ids[start:stop]``, rows in their order."""
        parts = {}
        for name, df in self.tables.present().items():
            where = self.positions[name]
            parts[name] = df[(where >= start) & (where < stop)]
        return Tables(**parts)


def date_columns(table: str) -> tuple[str, ...]:
    return tuple(c.name for c in CONTRACT[table].columns if c.kind in ("date", "timestamp"))


def _date_bounds(tables: Tables, pick) -> pd.Timestamp:
    found = []
    for name, df in tables.present().items():
        for col in date_columns(name):
            if col in df.columns and df[col].notna().any():
                found.append(pick(df[col]).normalize())
    return pick(pd.Series(found))


def data_end(tables: Tables) -> pd.Timestamp:
    """The latest date found in any table: labels need their whole window before it."""
    return _date_bounds(tables, lambda s: s.max())


def data_start(tables: Tables) -> pd.Timestamp:
    """The earliest date found in any table."""
    return _date_bounds(tables, lambda s: s.min())
