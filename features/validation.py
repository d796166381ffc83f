"""Validation of the input contract: raw tables in, typed ``Tables`` and a report out.

Hard violations raise one ``ContractError`` that lists every failure found (table, column, rule,
up to five offending rows); soft problems become warnings in a ``ValidationReport``.
Row numbers count data rows from 1, header excluded: in a CSV file, line = row + 1.
docs/data-contract.md is the prose version of these rules.

Returned types: ids and other text are object columns of plain ``str`` (missing = NaN); dates
are ``datetime64[ns]`` at midnight; interaction timestamps ``datetime64[ns]`` (naive, UTC when
the input carried an offset); numbers, ``term_months`` included, are ``float64`` (missing = NaN).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from textwrap import indent
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

import features.contract as fc
from features.contract import CONTRACT, TABLE_NAMES, Tables, date_columns

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
ANY_COLUMN = "*"
_DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
_PARSE_RULES = {
    "str": "text",
    "date": "date YYYY-MM-DD",
    "timestamp": "timestamp ISO 8601",
    "float": "number",
    "int": "number",
}
# Text columns are object columns holding str or NaN by construction (_as_text); pandera's `str`
# dtype would re-test every cell with isinstance (a quarter of validation time at 1M customers).
_DTYPES = {"str": "object", "date": "datetime64[ns]", "timestamp": "datetime64[ns]"}
_PANDERA_RULES = {"not_nullable": "not empty", "field_uniqueness": "unique"}
_WHOLE = pa.Check(lambda s: s % 1 == 0, error="whole number")
_CHECKS: dict[tuple[str, str], tuple[pa.Check, ...]] = {
    (fc.LOANS, fc.PRINCIPAL): (pa.Check.gt(0, error="> 0"),),
    (fc.LOANS, fc.INTEREST_RATE): (pa.Check.in_range(0, 1, include_max=False, error="in [0, 1)"),),
    (fc.LOANS, fc.TERM_MONTHS): (_WHOLE, pa.Check.gt(0, error="> 0")),
    (fc.REPAYMENTS, fc.AMOUNT_DUE): (pa.Check.ge(0, error=">= 0"),),
    (fc.REPAYMENTS, fc.AMOUNT_PAID): (pa.Check.ge(0, error=">= 0"),),
    (fc.SURVEYS, fc.SATISFACTION): (pa.Check.in_range(*fc.SATISFACTION_RANGE, error="in [1, 5]"),),
    (fc.SURVEYS, fc.NPS): (pa.Check.in_range(*fc.NPS_RANGE, error="in [0, 10]"),),
    (fc.CAMPAIGNS, fc.ARM): (pa.Check.isin(fc.ARMS, error=" or ".join(fc.ARMS)),),
    (fc.CAMPAIGNS, fc.COST): (pa.Check.ge(0, error=">= 0"),),
}


@dataclass(frozen=True, eq=False)
class Problem:
    """A rule broken in one column of one table: a hard failure or a soft warning."""

    table: str
    column: str
    rule: str
    count: int  # offending rows
    examples: pd.DataFrame  # columns row, value; at most MAX_EXAMPLES rows
    detail: str = ""

    def describe(self) -> str:
        head = f"table {self.table!r}, column {self.column!r}, rule {self.rule!r}"
        if self.detail:
            return f"{head}: {self.detail}"
        noun = "row fails" if self.count == 1 else "rows fail"
        shown = f"first {MAX_EXAMPLES} shown" if self.count > MAX_EXAMPLES else "all shown"
        body = indent(self.examples.to_string(index=False), "    ")
        return f"{head}: {self.count} {noun} ({shown}):\n{body}"

    def to_dict(self) -> dict[str, Any]:
        rows = [{"row": int(r), "value": str(v)} for r, v in self.examples.to_numpy()]
        names = {k: getattr(self, k) for k in ("table", "column", "rule")}
        return names | {"count": int(self.count), "examples": rows}


class ContractError(ValueError):
    """Hard violation. ``str(err)`` names table, column, rule and up to five offending rows.

    ``table``, ``column``, ``rule``, ``examples`` and ``n_failed`` describe the first failure;
    ``failures`` holds all of them, and the message lists each.
    """

    def __init__(self, failures: Sequence[Problem]) -> None:
        self.failures = tuple(failures)
        first = self.failures[0]
        self.table, self.column, self.rule = first.table, first.column, first.rule
        self.examples, self.n_failed = first.examples, first.count
        n = len(self.failures)
        lines = [f"input data breaks the contract ({n} problem{'s' * (n > 1)}):"]
        lines += [f"- {f.describe()}" for f in self.failures]
        super().__init__("\n".join(lines))


@dataclass
class ValidationReport:
    """Soft problems and row counts. ``tables[name]`` has rows_in, rows_out, ignored_columns."""

    tables: dict[str, dict[str, Any]]
    warnings: list[Problem] = field(default_factory=list)
    end: pd.Timestamp | None = None
    # The data's end as the later stages use it: ``end`` when set, else the latest date that is
    # not future-dated (validate_tables' ``cutoff``); None for tables without dates.
    data_end: pd.Timestamp | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (counts, per-table rows, warnings)."""
        return {
            "data_end": None if self.data_end is None else self.data_end.strftime("%Y-%m-%d"),
            "end": None if self.end is None else self.end.strftime("%Y-%m-%d"),
            "n_tables": len(self.tables),
            "n_warnings": len(self.warnings),
            "tables": self.tables,
            "warnings": [w.to_dict() for w in self.warnings],
        }


def table_schema(name: str) -> pa.DataFrameSchema:
    """The pandera schema of one table, built from ``CONTRACT`` (absent columns are skipped)."""
    columns = {
        c.name: pa.Column(
            _DTYPES.get(c.kind, "float64"),
            checks=list(_CHECKS.get((name, c.name), ())),
            nullable=c.nullable,
            unique=c.unique,
            required=False,
        )
        for c in CONTRACT[name].columns
    }
    return pa.DataFrameSchema(columns, name=name)


def validate_tables(
    raw: Mapping[str, pd.DataFrame],
    end: pd.Timestamp | None = None,
    cutoff: pd.Timestamp | None = None,
    strategy_ids: Collection[str] | None = None,
) -> tuple[Tables, ValidationReport]:
    """Check, coerce and clean raw tables; raise one ContractError listing every hard failure.

    Records dated after ``end`` (when set) or else after ``cutoff`` (the run's day plus
    ``data.future_tolerance_days``: future-dated) are kept and reported as warnings; they do not
    count in the report's ``data_end``. ``strategy_ids``: the strategy catalog's ids, which every
    ``campaigns.strategy_id`` must be (the catalog lives in ``models/``: the caller passes them;
    None skips that rule).
    """
    end = None if end is None else pd.Timestamp(end).normalize()
    cutoff = None if cutoff is None else pd.Timestamp(cutoff).normalize()
    failures = [
        Problem(n, ANY_COLUMN, "required table present", 1, _NO_ROWS, "table is missing")
        for n, spec in CONTRACT.items()
        if spec.required and n not in raw
    ]
    frames: dict[str, pd.DataFrame] = {}
    warnings: list[Problem] = []
    for name in (n for n in TABLE_NAMES if n in raw):
        frames[name], table_failures, table_warnings = _prepare_table(name, raw[name])
        failures += table_failures
        warnings += table_warnings
    failures += _cross_table_failures(frames)
    failures += _campaign_failures(frames, strategy_ids, _bounds(frames))
    if failures:
        raise ContractError(failures)
    if end is not None:
        warnings += _late_warnings(frames, end, f"dated after end {end:%Y-%m-%d}")
    elif cutoff is not None:
        warnings += _late_warnings(frames, cutoff, _future_rule(cutoff))
    for w in warnings:
        log.warning("%s.%s: %s (%d rows)", w.table, w.column, w.rule, w.count)
    counts = {
        n: {"rows_in": len(raw[n]), "rows_out": len(f), "ignored_columns": _extra(raw[n], f)}
        for n, f in frames.items()
    }
    report = ValidationReport(counts, warnings, end, end or _latest_date(frames, cutoff))
    return Tables(**{n: f.reset_index(drop=True) for n, f in frames.items()}), report


class SlicedValidation:
    """``validate_tables`` for a portfolio read one slice of customers at a time.

    Feed it each slice's tables (``table``), its loans' own rules (``loan_rules``) and its
    cross-table rules (``keys``, with that slice's loans); ``finish`` raises the same
    ``ContractError`` as ``validate_tables`` (problems of one rule merged across slices: counts
    summed, the first five rows of the file shown) or returns the same report. Every rule holds
    within one customer's rows (repayments follow their loan's customer), except the uniqueness
    of ``loan_id``, which ``book_unique`` checks once on the ids of every slice.
    """

    def __init__(
        self,
        present: Sequence[str],
        end: pd.Timestamp | None = None,
        cutoff: pd.Timestamp | None = None,
        strategy_ids: Collection[str] | None = None,
    ) -> None:
        self.end = None if end is None else pd.Timestamp(end).normalize()
        # as validate_tables: the future-dated rule applies only without ``end``
        self.cutoff = (
            None if cutoff is None or end is not None else pd.Timestamp(cutoff).normalize()
        )
        self.strategy_ids = strategy_ids
        self._span: list[pd.Timestamp] = []  # first and last day of the tables seen (campaigns
        self._campaigns: list[pd.DataFrame] = []  # aside), and the campaign slices, for finish
        self._found: dict[tuple, list[Problem]] = {}
        self._warned: dict[tuple, list[Problem]] = {}
        self.counts: dict[str, dict[str, Any]] = {}
        self.latest: pd.Timestamp | None = None  # the latest date seen (the report's data_end)
        missing = [n for n, spec in CONTRACT.items() if spec.required and n not in present]
        for n in missing:
            problem = Problem(
                n, ANY_COLUMN, "required table present", 1, _NO_ROWS, "table is missing"
            )
            self._add(self._found, (-1, 0), [problem])

    def table(self, name: str, raw: pd.DataFrame, rows: pd.Index | None = None) -> pd.DataFrame:
        """One table, or one slice of it; ``rows`` are its row numbers in the file."""
        typed, failures, warnings = _prepare_table(name, raw, rows)
        if name == fc.CAMPAIGNS:
            self._campaigns.append(typed)
        else:
            self._span.extend(_bounds({name: typed}) or ())
        latest = _latest_date({name: typed}, self.cutoff)
        seen = [d for d in (self.latest, latest) if d is not None]
        self.latest = max(seen) if seen else None
        order = (TABLE_NAMES.index(name), 0)
        self._add(self._found, order, failures)
        self._add(self._warned, order, warnings)
        late_order = (len(TABLE_NAMES), TABLE_NAMES.index(name))
        if self.end is not None:
            late = _late_warnings({name: typed}, self.end, f"dated after end {self.end:%Y-%m-%d}")
            self._add(self._warned, late_order, late)
        elif self.cutoff is not None:
            late = _late_warnings({name: typed}, self.cutoff, _future_rule(self.cutoff))
            self._add(self._warned, late_order, late)
        count = self.counts.setdefault(name, {"rows_in": 0, "rows_out": 0})
        count["rows_in"] += len(raw)
        count["rows_out"] += len(typed)
        count["ignored_columns"] = _extra(raw, typed)
        return typed

    @property
    def failed(self) -> bool:
        """A hard failure was found so far."""
        return bool(self._found)

    def loan_rules(self, loans: pd.DataFrame) -> None:
        """The loans table's own rules (each holds within one loan) on one slice's typed loans."""
        self._add(self._found, (len(TABLE_NAMES), 0), _loan_rules({fc.LOANS: loans}))

    def keys(self, frames: Mapping[str, pd.DataFrame]) -> None:
        """The cross-table rules on one slice's typed tables (its loans included)."""
        for i, problem in enumerate(_key_rules(frames), start=1):
            self._add(self._found, (len(TABLE_NAMES), i), [problem])

    def book_unique(self, name: str, column: str, typed: pd.Series, raw_cells) -> None:
        """``column`` unique across the whole table, checked once on its typed values (indexed
        by row number) when the table was validated in slices: replaces what the slices found
        of the rule. ``raw_cells(rows)`` gives the cells as in the file, for the examples."""
        order = (TABLE_NAMES.index(name), 0)
        self._found.pop((*order, name, column, "unique", ""), None)
        dup = typed.notna() & typed.duplicated(keep=False)
        if not dup.any():
            return
        rows = np.sort(typed.index[dup.to_numpy()].to_numpy())
        examples = _examples(raw_cells(rows[:MAX_EXAMPLES]))
        self._add(self._found, order, [Problem(name, column, "unique", int(dup.sum()), examples)])

    @property
    def span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The first and last day of the tables seen so far, campaigns aside (None: no dates)."""
        return (min(self._span), max(self._span)) if self._span else None

    def widen_span(self, days: Sequence[pd.Timestamp]) -> None:
        """Days of tables seen elsewhere (Spark's buckets): they count in ``span``."""
        self._span.extend(days)

    def campaign_rules(self, campaigns: pd.DataFrame) -> None:
        """campaigns' own rules on typed campaign rows, against ``span``: they need the whole
        span, so they run once, after every other table (``finish``, or Spark's second pass)."""
        late = _campaign_failures({fc.CAMPAIGNS: campaigns}, self.strategy_ids, self.span)
        self._add(self._found, (len(TABLE_NAMES) + 1, 0), late)

    def finish(self) -> ValidationReport:
        if self._campaigns:
            self.campaign_rules(pd.concat(self._campaigns))
        failures = _merged(self._found)
        if failures:
            raise ContractError(failures)
        warnings = _merged(self._warned, rank=False)
        for w in warnings:
            log.warning("%s.%s: %s (%d rows)", w.table, w.column, w.rule, w.count)
        order = [n for n in TABLE_NAMES if n in self.counts]
        counts = {n: self.counts[n] for n in order}
        return ValidationReport(counts, warnings, self.end, self.end or self.latest)

    def export(self) -> list[tuple]:
        """This check's state as plain rows (a Spark task's result): one per problem and per
        table count; ``absorb`` on the driver merges them."""
        rows = []
        for kind, found in (("failure", self._found), ("warning", self._warned)):
            for key, problems in found.items():
                for p in problems:
                    examples = (p.examples["row"].astype("int64").tolist(),
                                p.examples["value"].astype(str).tolist())  # fmt: skip
                    rows.append((kind, key[0], key[1], *key[2:], int(p.count), *examples))
        for name, c in self.counts.items():
            ignored = "\x1f".join(c["ignored_columns"])
            rows.append(("count", 0, 0, name, ignored, "", "", int(c["rows_in"]),
                         [int(c["rows_out"])], []))  # fmt: skip
        return rows

    def absorb(self, rows: Sequence[tuple]) -> None:
        """Merge the rows ``export`` gave (in a deterministic order)."""
        for kind, o1, o2, table, column, rule, detail, count, ex_rows, ex_values in rows:
            if kind == "count":
                total = self.counts.setdefault(table, {"rows_in": 0, "rows_out": 0})
                total["rows_in"] += count
                total["rows_out"] += ex_rows[0]
                total["ignored_columns"] = [c for c in column.split("\x1f") if c]
                continue
            examples = pd.DataFrame({"row": ex_rows, "value": ex_values})
            examples = examples.astype({"row": "int64", "value": object})
            problem = Problem(table, column, rule, count, examples, detail)
            self._add(self._found if kind == "failure" else self._warned, (o1, o2), [problem])

    def merge(self, other: SlicedValidation) -> None:
        """Add what ``other`` (a check of the next slice, made in another process) found: its
        problems, counts, dates and campaign rows, as if its tables had been fed to this check.
        Its missing-table problems are this check's own already (same tables present)."""
        for into, found in ((self._found, other._found), (self._warned, other._warned)):
            for key, problems in found.items():
                if key[:2] != (-1, 0):
                    into.setdefault(key, []).extend(problems)
        for name, count in other.counts.items():
            total = self.counts.setdefault(name, {"rows_in": 0, "rows_out": 0})
            total["rows_in"] += count["rows_in"]
            total["rows_out"] += count["rows_out"]
            total["ignored_columns"] = count["ignored_columns"]
        self._span.extend(other._span)
        self._campaigns.extend(other._campaigns)
        seen = [d for d in (self.latest, other.latest) if d is not None]
        self.latest = max(seen) if seen else None

    @staticmethod
    def _add(into: dict, order: tuple, problems: Sequence[Problem | None]) -> None:
        for p in (p for p in problems if p is not None):
            into.setdefault((*order, p.table, p.column, p.rule, p.detail), []).append(p)


def _rank(key: tuple) -> tuple:
    """Where ``validate_tables`` lists a problem: its table's place, then within a table
    required columns, unparseable cells, then pandera's checks column by column."""
    order, table, column, rule, detail = key[:2], *key[2:]
    if order[0] < 0 or order[0] >= len(TABLE_NAMES) or table not in CONTRACT:
        return (*order, 0, 0, 0)
    names = CONTRACT[table].column_names
    position = names.index(column) if column in names else len(names)
    if rule == "required column present":
        return (*order, 0, position, 0)
    if rule in _PARSE_RULES.values() and not detail:
        return (*order, 1, position, 0)
    checks = [c.error for c in _CHECKS.get((table, column), ())]
    within = {"not empty": 0, "unique": 1}.get(
        rule, 2 + (checks.index(rule) if rule in checks else 0)
    )
    return (*order, 2, position, within)


def _merged(found: Mapping[tuple, list[Problem]], rank: bool = True) -> list[Problem]:
    """One problem per rule, in the order ``validate_tables`` lists them (warnings: by table,
    then as first found)."""
    out = []
    for key in sorted(
        found, key=_rank if rank else lambda k: k[:2]
    ):  # stable: first seen first within an order
        parts = found[key]
        first = parts[0]
        if first.detail or len(parts) == 1:
            out.append(first)
            continue
        examples = pd.concat([p.examples for p in parts]).sort_values("row", kind="stable")
        count = sum(p.count for p in parts)
        examples = examples.head(MAX_EXAMPLES).reset_index(drop=True)
        out.append(Problem(first.table, first.column, first.rule, count, examples))
    return out


def _prepare_table(
    name: str, df: pd.DataFrame, rows: pd.Index | None = None
) -> tuple[pd.DataFrame, list[Problem], list[Problem]]:
    """Coerce, clean and check one table; ``rows`` numbers its rows (default 1..n)."""
    rows = pd.RangeIndex(1, len(df) + 1) if rows is None else rows
    numbered = df.set_axis(pd.Index(rows, name="row"))
    found = ", ".join(map(str, df.columns)) or "no columns"
    failures = [
        Problem(name, c, "required column present", 1, _NO_ROWS, f"missing; found {found}")
        for c in CONTRACT[name].required_columns
        if c not in df.columns
    ]
    typed, parse_failures, unparsed = _coerce_table(name, numbered)
    cleaned, warnings = _clean_table(name, typed)
    failures += parse_failures + _schema_failures(name, cleaned, numbered, unparsed)
    return cleaned, failures, warnings


def _extra(raw: pd.DataFrame, typed: pd.DataFrame) -> list[str]:
    return [str(c) for c in raw.columns if c not in typed.columns]


def _coerce_table(name: str, df: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem], pd.Index]:
    """Type every contract column present; extra columns are dropped.

    Returns the typed frame, one failure per column with unparseable cells, and the
    (row, column) pairs of those cells.
    """
    columns, masks, failures = {}, {}, []
    for spec in (c for c in CONTRACT[name].columns if c.name in df.columns):
        columns[spec.name], masks[spec.name] = _coerce_column(spec.kind, df[spec.name])
        bad = df.loc[masks[spec.name], spec.name]
        failures.append(_problem(name, spec.name, _PARSE_RULES[spec.kind], bad))
    typed = pd.DataFrame(columns, index=df.index)
    flags = pd.DataFrame(masks, index=df.index, dtype=bool)
    rows, cols = np.nonzero(flags.to_numpy(dtype=bool))
    unparsed = pd.MultiIndex.from_arrays([flags.index[rows], flags.columns[cols]])
    return typed, [f for f in failures if f is not None], unparsed


def _coerce_column(kind: str, s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The typed column and a mask of non-empty cells that could not be parsed."""
    if kind == "str":
        return _as_text(s), pd.Series(False, index=s.index)
    if kind in ("float", "int"):
        return _to_number(s)
    return _to_datetime(s, kind)


def _as_text(s: pd.Series) -> pd.Series:
    """Stripped ``str`` values in an object column; empty cells become NaN.

    A column of strings is stripped once per distinct value (ids and codes repeat: a loan's id is
    on each of its repayments), which is several times faster on large tables.
    """
    if pd.api.types.infer_dtype(s, skipna=True) != "string":
        return _strip(s)
    codes, uniques = pd.factorize(s)
    stripped = np.append(_strip(pd.Series(uniques, dtype=object)).to_numpy(), np.nan)
    return pd.Series(stripped[codes], index=s.index, name=s.name)  # code -1 (missing) -> NaN


def stripped_text(s: pd.Series) -> pd.Series:
    """A column as validation reads text (stripped ``str``, empty = NaN): keys found before the
    tables are validated (pipelines/slices.py) match the validated ones."""
    return _as_text(s)


def _strip(s: pd.Series) -> pd.Series:
    text = s.astype("string").str.strip()
    keep = text.fillna("").ne("").to_numpy(dtype=bool)
    return text.astype(object).where(keep, np.nan)


def _to_number(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        values = s.astype("float64")
        present = values.notna()
    else:
        text = _as_text(s)
        present = text.notna()
        values = pd.to_numeric(text, errors="coerce").astype("float64")
    out = values.where(np.isfinite(values))
    return out, present & out.isna()


def _to_datetime(s: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """Dates: strict YYYY-MM-DD, normalised to midnight. Timestamps: ISO 8601, naive UTC."""
    present = s.notna()
    if pd.api.types.is_datetime64_any_dtype(s):
        local = kind == "date" or s.dt.tz is None  # a date keeps its calendar day
        out = s.dt.tz_localize(None) if local else s.dt.tz_convert(None)
    elif pd.api.types.infer_dtype(s, skipna=True) in ("date", "datetime"):
        out = pd.to_datetime(s, errors="coerce", utc=True).dt.tz_convert(None)
    else:
        text = _as_text(s)
        present = text.notna()
        if kind == "date":
            ok = text.str.fullmatch(_DATE_PATTERN, na=False)
            out = pd.to_datetime(text.where(ok), format="%Y-%m-%d", errors="coerce")
        else:
            out = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
            out = out.dt.tz_convert(None)
    out = out.astype("datetime64[ns]")
    out = out.dt.normalize() if kind == "date" else out
    return out, present & out.isna()


def _clean_table(name: str, df: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Soft fixes: drop exact duplicate rows, map unknown kinds, flag empty surveys."""
    if df.columns.empty:
        return df, []
    dup = df.duplicated(keep="first")
    warnings = [_problem(name, ANY_COLUMN, "exact duplicate row (dropped)", df.iloc[:, 0][dup])]
    df = df.loc[~dup]
    if name == fc.INTERACTIONS:
        df, vocabulary = _interaction_vocabulary(df)
        warnings += vocabulary
    if name == fc.CAMPAIGNS and fc.ARM in df.columns:
        df = df.assign(**{fc.ARM: _lower(df[fc.ARM])})
    if name == fc.LOANS and fc.CLOSE_REASON in df.columns:
        df, reason = _close_reason_vocabulary(df)
        warnings.append(reason)
    if name == fc.SURVEYS and {fc.SATISFACTION, fc.NPS} <= set(df.columns):
        empty = df[fc.SATISFACTION].isna() & df[fc.NPS].isna()
        rule = "both scores empty (kept)"
        warnings.append(_problem(name, f"{fc.SATISFACTION}+{fc.NPS}", rule, df.iloc[:, 0][empty]))
    return df, [w for w in warnings if w is not None]


def _lower(s: pd.Series) -> pd.Series:
    """``s.str.lower()`` of a text column (``_as_text``: str or NaN), once per distinct value: a
    kind or channel repeats on millions of rows (at 1M customers, lowering every row took 3.9 s
    of a scoring run)."""
    if s.dtype != object:
        return s.str.lower()
    codes, uniques = pd.factorize(s)
    lowered = pd.Series(uniques, dtype=object).str.lower().to_numpy(dtype=object)
    return pd.Series(np.append(lowered, np.nan)[codes], index=s.index, name=s.name, dtype=object)


def _interaction_vocabulary(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem | None]]:
    """Lower-case kind and channel; kinds outside the vocabulary become 'other'."""
    warnings: list[Problem | None] = []
    if fc.KIND in df.columns:
        kind = _lower(df[fc.KIND])
        unknown = kind.notna() & ~kind.isin((*fc.KNOWN_KINDS, fc.OTHER_KIND))
        rule = f"kind outside {', '.join(fc.KNOWN_KINDS)} (mapped to '{fc.OTHER_KIND}')"
        warnings.append(_problem(fc.INTERACTIONS, fc.KIND, rule, df.loc[unknown, fc.KIND]))
        df = df.assign(**{fc.KIND: kind.mask(unknown, fc.OTHER_KIND)})
    if fc.CHANNEL in df.columns:
        channel = _lower(df[fc.CHANNEL])
        unknown = channel.notna() & ~channel.isin(fc.KNOWN_CHANNELS)
        warnings.append(
            _problem(fc.INTERACTIONS, fc.CHANNEL, "unknown channel (kept)", channel[unknown])
        )
        df = df.assign(**{fc.CHANNEL: channel})
    return df, warnings


def _close_reason_vocabulary(df: pd.DataFrame) -> tuple[pd.DataFrame, Problem | None]:
    """Lower-case close_reason; values outside the vocabulary become 'other' (a warning)."""
    reason = _lower(df[fc.CLOSE_REASON])
    unknown = reason.notna() & ~reason.isin(fc.CLOSE_REASONS)
    rule = (
        f"close_reason outside {', '.join(fc.CLOSE_REASONS)} (mapped to '{fc.OTHER_CLOSE_REASON}')"
    )
    warning = _problem(fc.LOANS, fc.CLOSE_REASON, rule, df.loc[unknown, fc.CLOSE_REASON])
    return df.assign(**{fc.CLOSE_REASON: reason.mask(unknown, fc.OTHER_CLOSE_REASON)}), warning


def _schema_failures(
    name: str, df: pd.DataFrame, raw: pd.DataFrame, unparsed: pd.Index
) -> list[Problem]:
    """Run the pandera schema on the typed ``df``; group its failure cases by (column, rule).

    Examples show the cell as it is in the file (``raw``), not the coerced value.
    """
    try:
        table_schema(name).validate(df, lazy=True)
        return []
    except SchemaErrors as err:
        cases = err.failure_cases
    except SchemaError as err:  # not raised with lazy=True today; kept as a safety net
        return [Problem(name, ANY_COLUMN, "schema", 1, _NO_ROWS, str(err))]
    cells = pd.MultiIndex.from_arrays([cases["index"], cases["column"]])
    already_reported = (cases["check"] == "not_nullable").to_numpy() & cells.isin(unparsed)
    cases = cases.loc[~already_reported]
    cases = cases.assign(rule=cases["check"].astype(str).replace(_PANDERA_RULES))
    groups = cases.groupby(["column", "rule"], sort=False)
    return [
        _problem(name, str(column), str(rule), _raw_cells(raw, column, g))
        for (column, rule), g in groups
    ]


def _raw_cells(raw: pd.DataFrame, column: str, cases: pd.DataFrame) -> pd.Series:
    if column in raw.columns and cases["index"].notna().all():
        return raw[column].reindex(cases["index"].to_numpy())
    return cases["failure_case"].set_axis(cases["index"])


def _cross_table_failures(frames: Mapping[str, pd.DataFrame]) -> list[Problem]:
    """Rules spanning columns or tables: known keys and ordered dates."""
    found = _loan_rules(frames) + _key_rules(frames)
    return [f for f in found if f is not None]


def _loan_rules(frames: Mapping[str, pd.DataFrame]) -> list[Problem | None]:
    """Rules within the loans table; each holds within one loan (checked per slice when sliced)."""
    loans = frames.get(fc.LOANS)
    if loans is None or not {fc.CLOSED_DATE, fc.ORIGINATION_DATE} <= set(loans.columns):
        return [None]
    return [_before_origination(fc.LOANS, loans, fc.CLOSED_DATE, "")]


def _key_rules(frames: Mapping[str, pd.DataFrame]) -> list[Problem | None]:
    """Rules between tables, one entry per rule (None: passed or not applicable). Each holds
    within one customer's rows, so a slice of customers checks them for its rows."""
    loans = frames.get(fc.LOANS)
    out: list[Problem | None] = [None, None, None, None]
    if loans is None:
        return out
    customers = frames.get(fc.CUSTOMERS)
    if customers is not None:
        out[0] = _unknown_keys(fc.LOANS, loans, fc.CUSTOMER_ID, customers, fc.CUSTOMERS)
    campaigns = frames.get(fc.CAMPAIGNS)
    if campaigns is not None:  # a campaign names a customer of the book (customers, else loans)
        known, known_in = (loans, fc.LOANS) if customers is None else (customers, fc.CUSTOMERS)
        out[3] = _unknown_keys(fc.CAMPAIGNS, campaigns, fc.CUSTOMER_ID, known, known_in)
    repayments = frames.get(fc.REPAYMENTS)
    if repayments is not None:
        out[1] = _unknown_keys(fc.REPAYMENTS, repayments, fc.LOAN_ID, loans, fc.LOANS)
        out[2] = _due_before_origination(repayments, loans)
    return out


def _campaign_failures(
    frames: Mapping[str, pd.DataFrame],
    strategy_ids: Collection[str] | None,
    bounds: tuple[pd.Timestamp, pd.Timestamp] | None,
) -> list[Problem]:
    """campaigns' own rules: strategy ids of the catalog, and dates inside the other tables'
    span (a campaign is a decision taken on the data, not before or after it)."""
    campaigns = frames.get(fc.CAMPAIGNS)
    if campaigns is None:
        return []
    found = []
    if strategy_ids is not None and fc.STRATEGY_ID in campaigns.columns:
        ids = campaigns[fc.STRATEGY_ID]
        unknown = ids.notna() & ~ids.isin(list(strategy_ids))
        rule = f"{fc.STRATEGY_ID} in the strategy catalog"
        found.append(_problem(fc.CAMPAIGNS, fc.STRATEGY_ID, rule, ids[unknown]))
    if bounds is not None and fc.CAMPAIGN_DATE in campaigns.columns:
        first, last = bounds
        day = campaigns[fc.CAMPAIGN_DATE]
        outside = day.notna() & ((day < first) | (day > last))
        rule = f"{fc.CAMPAIGN_DATE} inside the data ({first:%Y-%m-%d} to {last:%Y-%m-%d})"
        found.append(
            _problem(fc.CAMPAIGNS, fc.CAMPAIGN_DATE, rule, day[outside].dt.strftime("%Y-%m-%d"))
        )
    return [f for f in found if f is not None]


def _bounds(frames: Mapping[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The first and last calendar day in the tables other than campaigns (None: no dates)."""
    days = [
        frames[name][column].dt.normalize()
        for name in frames
        if name != fc.CAMPAIGNS
        for column in date_columns(name)
        if column in frames[name].columns and frames[name][column].notna().any()
    ]
    if not days:
        return None
    return min(d.min() for d in days), max(d.max() for d in days)


def _unknown_keys(
    table: str, df: pd.DataFrame, key: str, parent: pd.DataFrame, parent_name: str
) -> Problem | None:
    if key not in df.columns or key not in parent.columns:
        return None
    unknown = df[key].notna() & ~df[key].isin(parent[key].dropna())
    return _problem(table, key, f"{key} known in {parent_name}", df.loc[unknown, key])


def _due_before_origination(repayments: pd.DataFrame, loans: pd.DataFrame) -> Problem | None:
    if not {fc.LOAN_ID, fc.DUE_DATE} <= set(repayments.columns) or fc.ORIGINATION_DATE not in loans:
        return None
    first = loans.dropna(subset=[fc.LOAN_ID]).drop_duplicates(fc.LOAN_ID).set_index(fc.LOAN_ID)
    origination = repayments[fc.LOAN_ID].map(first[fc.ORIGINATION_DATE])
    with_origin = repayments.assign(**{fc.ORIGINATION_DATE: origination})
    return _before_origination(fc.REPAYMENTS, with_origin, fc.DUE_DATE, " of its loan")


def _before_origination(table: str, df: pd.DataFrame, column: str, of: str) -> Problem | None:
    """Rows where ``column`` precedes origination, shown as '2023-01-01 < origination_date …'."""
    bad = df.loc[df[column] < df[fc.ORIGINATION_DATE]]
    origination = f" < {fc.ORIGINATION_DATE} " + bad[fc.ORIGINATION_DATE].dt.strftime("%Y-%m-%d")
    values = bad[column].dt.strftime("%Y-%m-%d") + origination
    return _problem(table, column, f"{column} >= {fc.ORIGINATION_DATE}{of}", values)


def _future_rule(cutoff: pd.Timestamp) -> str:
    return f"future-dated: after {cutoff:%Y-%m-%d} (kept; not counted in the data's end)"


def _late_warnings(
    frames: Mapping[str, pd.DataFrame], end: pd.Timestamp, rule: str
) -> list[Problem]:
    """Records whose calendar day is after ``end``: kept, counted per table and column."""
    warnings = []
    for name, df in frames.items():
        for column in (c for c in date_columns(name) if c in df.columns):
            late = df[column].dt.normalize() > end
            values = df.loc[late, column].dt.strftime("%Y-%m-%d")
            warnings.append(_problem(name, column, rule, values))
    return [w for w in warnings if w is not None]


def _latest_date(
    frames: Mapping[str, pd.DataFrame], cutoff: pd.Timestamp | None
) -> pd.Timestamp | None:
    """The latest calendar day in any date column, ignoring days after ``cutoff``."""
    latest = []
    for name, df in frames.items():
        for column in (c for c in date_columns(name) if c in df.columns):
            days = df[column].dt.normalize()
            days = days if cutoff is None else days[days <= cutoff]
            if days.notna().any():
                latest.append(days.max())
    return max(latest) if latest else None


def file_problem(table: str, rule: str, detail: str) -> Problem:
    """A problem with a table's file as a whole (two files, empty, unreadable, no rows)."""
    return Problem(table, ANY_COLUMN, rule, 1, _NO_ROWS, detail)


def _examples(bad: pd.Series) -> pd.DataFrame:
    """The first offending rows as a (row, value) frame; empty cells shown as <empty>."""
    head = bad.iloc[:MAX_EXAMPLES]
    values = head.astype(object).where(head.notna(), "<empty>").astype(str)
    return pd.DataFrame({"row": head.index.to_numpy(), "value": values.to_numpy()})


def _problem(table: str, column: str, rule: str, bad: pd.Series) -> Problem | None:
    """A problem for the offending values ``bad`` (indexed by row), or None when empty."""
    return Problem(table, column, rule, len(bad), _examples(bad)) if len(bad) else None


_NO_ROWS = _examples(pd.Series([], dtype=object, index=pd.Index([], dtype="int64")))
