"""Retention strategies: the catalog (models/strategies/strategies.yaml) and the rule that picks
them.

The catalog lists every retention and loyalty strategy named in the five domain documents, each
with its source (file, title, section, a verbatim quote), the customer states it applies to and
the feature groups whose contribution to churn risk triggers it. ``load_catalog`` is the only
function here that reads a file; everything else is pure.

The choice rule (``recommend`` for one customer, ``recommend_frame`` for many; docs/strategies.md
has a worked example):

1. *Eligible*: the strategy's ``applies_to`` matches the customer's stage, tier, lifecycle state
   and loyalty level (a dimension left out means any value).
2. *Score*: the sum of the positive contributions of the groups that trigger the strategy with
   direction ``up`` (``down`` triggers never score).
3. *Candidates*: eligible strategies with a positive score, plus every eligible strategy specific
   to the customer's lifecycle state or tier (those may score 0).
4. *Anchors* carry a fixed state bonus that beats any score: the ``anchor`` strategy of the
   customer's lifecycle state is picked first, then that of its tier (dormant -> wake-up,
   churned -> win-back, new -> welcome, VIP -> dedicated team), even with no positive driver.
5. The other slots go, one at a time, to the candidate with the largest *new* evidence: the sum
   over its ``up`` groups not already addressed by an earlier pick (``diversify=False`` uses the
   plain score instead); ties go to the larger plain score, then to the earlier catalog entry.
   Stop at ``k`` picks or when candidates run out, so fewer than ``k`` can come back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from features.registry import GROUPS, LIFECYCLE_STATE, LOYALTY_LEVEL, LOYALTY_STAGE, TIER
from features.spec import LIFECYCLE_STATES, LOYALTY_LEVELS, LOYALTY_STAGES, TIERS

CATALOG_FILE = "strategies.yaml"
DIRECTIONS = ("up", "down")
# applies_to dimension -> allowed values, and the drivers_df column that holds it.
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "stage": LOYALTY_STAGES,
    "tier": TIERS,
    "lifecycle": LIFECYCLE_STATES,
    "loyalty_level": LOYALTY_LEVELS,
}
STATE_COLUMNS: dict[str, str] = {
    "stage": LOYALTY_STAGE,
    "tier": TIER,
    "lifecycle": LIFECYCLE_STATE,
    "loyalty_level": LOYALTY_LEVEL,
}
# Dimensions whose specific strategies always stay candidates, and the anchor bonus of each
# (the lifecycle anchor outranks the tier anchor).
ANCHOR_RANK = {"lifecycle": 2, "tier": 1}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when libyaml is there
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_REQUIRED = ("id", "name_zh", "name_en", "source", "action")
_OPTIONAL = ("applies_to", "triggers", "anchor", "see_also")
_SOURCE_FIELDS = ("file", "title", "section", "quote")


class CatalogError(ValueError):
    """The strategy catalog is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class Source:
    file: str
    title: str
    section: str
    quote: str


@dataclass(frozen=True)
class Strategy:
    id: str
    name_zh: str
    name_en: str
    source_file: str
    source_title: str
    section: str
    applies_to: dict[str, tuple[str, ...]] = field(hash=False)
    triggers: tuple[tuple[str, str], ...]
    action: str
    quote: str = ""
    anchor: bool = False
    see_also: tuple[Source, ...] = ()

    @property
    def up_groups(self) -> frozenset[str]:
        return frozenset(g for g, d in self.triggers if d == "up")

    @property
    def is_state_specific(self) -> bool:
        return any(dim in self.applies_to for dim in ANCHOR_RANK)

    @property
    def anchor_rank(self) -> int:
        if not self.anchor:
            return 0
        return max(ANCHOR_RANK[dim] for dim in self.applies_to if dim in ANCHOR_RANK)

    def matches(self, state: Mapping[str, str]) -> bool:
        return all(state[dim] in values for dim, values in self.applies_to.items())


@dataclass(frozen=True)
class Catalog:
    version: str
    strategies: tuple[Strategy, ...]
    _index: dict[str, Strategy] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_catalog(self.version, self.strategies)
        object.__setattr__(self, "_index", {s.id: s for s in self.strategies})

    @property
    def ids(self) -> tuple[str, ...]:
        """The strategy ids in catalog order: the only ones ``campaigns.strategy_id`` may hold."""
        return tuple(self._index)

    def by_id(self, strategy_id: str) -> Strategy:
        try:
            return self._index[strategy_id]
        except KeyError:
            raise KeyError(f"no strategy with id {strategy_id!r} in the catalog") from None

    def for_group(self, group: str, direction: str = "up") -> tuple[Strategy, ...]:
        """Strategies triggered by ``group`` pushing churn risk ``direction``, in catalog order."""
        _check_value("group", group, GROUPS)
        _check_value("direction", direction, DIRECTIONS)
        return tuple(s for s in self.strategies if (group, direction) in s.triggers)


# --- loading and validation ---------------------------------------------------------------------
def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate the catalog (default: the strategies.yaml shipped with this package)."""
    if path is None:
        where, text = (
            CATALOG_FILE,
            resources.files("models.strategies").joinpath(CATALOG_FILE).read_text("utf-8"),
        )
    else:
        where, text = str(path), Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{where}: not valid YAML: {exc}") from exc
    return parse_catalog(data, where, GROUPS)


def parse_catalog(data: Any, where: str = CATALOG_FILE, groups: Sequence[str] = ()) -> Catalog:
    """Build a Catalog from the parsed YAML document, failing loudly on anything unexpected.

    Every feature group in ``groups`` must have a strategy it triggers by pushing risk up:
    ``load_catalog`` checks the authored catalog against today's ``GROUPS``. A catalog stored
    with a registered version is read back without it (the stored model code calls
    ``parse_catalog(data)``): it was checked against the groups of its day, and a group added
    since (whose features that version does not have) must not stop it loading.
    """
    if not isinstance(data, Mapping) or set(data) != {"version", "strategies"}:
        raise CatalogError(f"{where}: the top level must have exactly the keys version, strategies")
    entries = data["strategies"]
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{where}: 'strategies' must be a non-empty list")
    if isinstance(data["version"], bool) or not isinstance(data["version"], int | str):
        raise CatalogError(f"{where}: 'version' must be a number or a string")
    strategies = tuple(_parse_entry(raw, i, where) for i, raw in enumerate(entries))
    try:
        catalog = Catalog(str(data["version"]), strategies)
        _check_coverage(strategies, groups)
    except CatalogError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    return catalog


def _parse_entry(raw: Any, i: int, where: str) -> Strategy:
    sid = raw.get("id") if isinstance(raw, Mapping) else None
    label = f"{where}: strategy {sid!r} (entry {i + 1})" if sid else f"{where}: entry {i + 1}"

    def fail(name: str, problem: str) -> CatalogError:
        return CatalogError(f"{label}: field '{name}': {problem}")

    if not isinstance(raw, Mapping):
        raise CatalogError(f"{label}: must be a mapping")
    for name in _REQUIRED:
        if name not in raw:
            raise fail(name, "missing")
    for name in set(raw) - set(_REQUIRED) - set(_OPTIONAL):
        raise fail(name, f"unknown field (allowed: {', '.join(_REQUIRED + _OPTIONAL)})")
    text = {n: _text(raw[n], n, fail) for n in ("id", "name_zh", "name_en", "action")}
    if not _ID.match(text["id"]):
        raise fail("id", f"{text['id']!r} is not snake_case")
    source = _source(raw["source"], "source", fail)
    see_also = raw.get("see_also") or []
    if not isinstance(see_also, list):
        raise fail("see_also", "must be a list of sources")
    applies_to = _applies_to(raw.get("applies_to") or {}, fail)
    triggers = _triggers(raw.get("triggers") or [], fail)
    anchor = raw.get("anchor", False)
    if not isinstance(anchor, bool):
        raise fail("anchor", "must be true or false")
    return Strategy(
        id=text["id"],
        name_zh=text["name_zh"],
        name_en=text["name_en"],
        source_file=source.file,
        source_title=source.title,
        section=source.section,
        applies_to=applies_to,
        triggers=triggers,
        action=text["action"],
        quote=source.quote,
        anchor=anchor,
        see_also=tuple(_source(s, f"see_also[{j}]", fail) for j, s in enumerate(see_also)),
    )


def _text(value: Any, name: str, fail: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(name, "must be a non-empty string")
    return " ".join(value.split())


def _source(raw: Any, name: str, fail: Any) -> Source:
    if not isinstance(raw, Mapping) or set(raw) != set(_SOURCE_FIELDS):
        raise fail(name, f"must be a mapping with exactly {', '.join(_SOURCE_FIELDS)}")
    return Source(*(_text(raw[f], f"{name}.{f}", fail) for f in _SOURCE_FIELDS))


def _applies_to(raw: Any, fail: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise fail("applies_to", "must be a mapping of dimension -> list of values")
    out: dict[str, tuple[str, ...]] = {}
    for dim, values in raw.items():
        if dim not in DIMENSIONS:
            raise fail(
                "applies_to", f"unknown dimension {dim!r} (allowed: {', '.join(DIMENSIONS)})"
            )
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or len(set(values)) != len(values):
            raise fail(f"applies_to.{dim}", "must be a list of distinct values")
        for v in values:
            if v not in DIMENSIONS[dim]:
                raise fail(f"applies_to.{dim}", f"unknown value {v!r} (allowed: {DIMENSIONS[dim]})")
        if values:  # an empty list means "any", like a missing dimension
            out[dim] = tuple(values)
    return out


def _triggers(raw: Any, fail: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise fail("triggers", "must be a list of {group, direction}")
    out: list[tuple[str, str]] = []
    for j, t in enumerate(raw):
        if not isinstance(t, Mapping) or set(t) != {"group", "direction"}:
            raise fail(f"triggers[{j}]", "must be a mapping with exactly group, direction")
        if t["group"] not in GROUPS:
            raise fail(f"triggers[{j}].group", f"unknown feature group {t['group']!r} ({GROUPS})")
        if t["direction"] not in DIRECTIONS:
            raise fail(f"triggers[{j}].direction", f"{t['direction']!r} is not up or down")
        if (t["group"], t["direction"]) in out:
            raise fail(f"triggers[{j}]", f"duplicate trigger {t['group']}/{t['direction']}")
        out.append((t["group"], t["direction"]))
    return tuple(out)


def _check_catalog(version: str, strategies: tuple[Strategy, ...]) -> None:
    if not str(version).strip() or not strategies:
        raise CatalogError("the catalog needs a version and at least one strategy")
    seen: dict[str, int] = {}
    titles: dict[str, str] = {}
    anchors: dict[tuple[str, str], str] = {}
    for i, s in enumerate(strategies):
        label = f"strategy {s.id!r} (entry {i + 1})"
        if s.id in seen:
            raise CatalogError(f"{label}: field 'id': duplicate of entry {seen[s.id] + 1}")
        seen[s.id] = i
        for src in (Source(s.source_file, s.source_title, s.section, s.quote), *s.see_also):
            if titles.setdefault(src.file, src.title) != src.title:
                raise CatalogError(f"{label}: field 'source.title': {src.file} has another title")
        if not s.up_groups and not s.is_state_specific:
            raise CatalogError(
                f"{label}: field 'triggers': needs an 'up' trigger, or applies_to naming a "
                "lifecycle state or tier (otherwise it can never be recommended)"
            )
        if s.anchor:
            scope = [(d, v) for d, vs in s.applies_to.items() for v in vs]
            if len(scope) != 1 or scope[0][0] not in ANCHOR_RANK:
                raise CatalogError(
                    f"{label}: field 'anchor': an anchor's applies_to must name exactly one "
                    "lifecycle state or one tier, and nothing else"
                )
            key = scope[0]
            if key in anchors:
                raise CatalogError(f"{label}: field 'anchor': {key} already has {anchors[key]!r}")
            anchors[key] = s.id


def _check_coverage(strategies: tuple[Strategy, ...], groups: Sequence[str]) -> None:
    uncovered = [g for g in groups if not any(g in s.up_groups for s in strategies)]
    if uncovered:
        raise CatalogError(f"no strategy is triggered by {uncovered} pushing risk up")


def _check_value(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(allowed)}")


# --- the choice rule -----------------------------------------------------------------------------
def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def recommend(
    catalog: Catalog,
    drivers: Sequence[tuple[str, float]],
    tier: str,
    lifecycle: str,
    loyalty_level: str,
    stage: str,
    k: int = 3,
    *,
    diversify: bool = True,
) -> list[Strategy]:
    """Up to ``k`` strategies for one customer, best first (the rule is in the module docstring).

    ``drivers`` are (feature group, contribution to churn risk) pairs, each group at most once;
    negative and NaN contributions count as 0.
    """
    _check_k(k)
    state = {"tier": tier, "lifecycle": lifecycle, "loyalty_level": loyalty_level, "stage": stage}
    for dim, value in state.items():
        _check_value(dim, value, DIMENSIONS[dim])
    positive: dict[str, float] = {}
    for group, value in drivers:
        _check_value("feature group", group, GROUPS)
        if group in positive:
            raise ValueError(f"feature group {group!r} appears twice in drivers")
        positive[group] = float(value) if float(value) > 0 else 0.0

    def gain(s: Strategy, covered: set[str]) -> float:
        return sum(positive.get(g, 0.0) for g in GROUPS if g in s.up_groups and g not in covered)

    pool = [
        (i, s)
        for i, s in enumerate(catalog.strategies)
        if s.matches(state) and (gain(s, set()) > 0 or s.is_state_specific)
    ]
    chosen: list[Strategy] = []
    covered: set[str] = set()
    while pool and len(chosen) < k:
        best = min(
            pool,
            key=lambda p: (
                -p[1].anchor_rank,
                -gain(p[1], covered if diversify else set()),
                -gain(p[1], set()),
                p[0],
            ),
        )
        pool.remove(best)
        chosen.append(best[1])
        covered |= best[1].up_groups
    return chosen


def strategy_columns(k: int) -> list[str]:
    return [f"strategy_{j + 1}" for j in range(k)]


# What a person reads next to each strategy id (docs/scoring.md): column suffix -> text.
DETAILS = {
    "name": lambda s: s.name_en,
    "name_zh": lambda s: s.name_zh,
    "action": lambda s: s.action,
    "source": lambda s: source_text(s),
}


def source_text(strategy: Strategy) -> str:
    """Where the strategy is named: the document's title and file, and the section."""
    return f"{strategy.source_title} ({strategy.source_file}), § {strategy.section}"


def strategy_detail_columns(k: int) -> list[str]:
    """strategy_1_name, strategy_1_name_zh, strategy_1_action, strategy_1_source, ... up to k."""
    return [f"{c}_{d}" for c in strategy_columns(k) for d in DETAILS]


def strategy_details(catalog: Catalog | None, ids: pd.DataFrame, k: int) -> pd.DataFrame:
    """The English and Chinese name, the one-sentence action and the source of the strategy in
    each of ``ids``' strategy_1..k columns (None where there is none), on ``ids``' index."""
    known = {} if catalog is None else {s.id: s for s in catalog.strategies}
    out = {}
    for column in strategy_columns(k):
        chosen = ids[column] if column in ids else pd.Series(None, index=ids.index, dtype=object)
        codes, uniques = pd.factorize(chosen)  # once per distinct strategy, not per customer
        for suffix, read in DETAILS.items():
            texts = [read(known[u]) if u in known else None for u in uniques]
            out[f"{column}_{suffix}"] = np.array([*texts, None], dtype=object)[codes]
    return pd.DataFrame(out, index=ids.index)


def recommend_frame(
    catalog: Catalog, drivers_df: pd.DataFrame, k: int = 3, *, diversify: bool = True
) -> pd.DataFrame:
    """``recommend`` for every row of ``drivers_df``, vectorised over rows.

    ``drivers_df`` has one column per feature group (named as in GROUPS; a missing group counts as
    0) and the state columns of STATE_COLUMNS. Returns strategy_1..strategy_k holding strategy ids
    ("" where a customer gets fewer than k), on the same index. Rows that no group pushes up
    (unexplained customers, whose drivers are missing) depend on their states alone, so they are
    decided once per distinct combination of states.
    """
    _check_k(k)
    present = [g for g in GROUPS if g in drivers_df.columns]
    if not present:
        raise ValueError(f"drivers_df has none of the feature-group columns {GROUPS}")
    positive = np.zeros((len(drivers_df), len(GROUPS)))
    for j, g in enumerate(GROUPS):
        if g in present:
            values = drivers_df[g].to_numpy(dtype=float, na_value=np.nan)
            positive[:, j] = np.where(values > 0, values, 0.0)
    picks = np.full((len(drivers_df), k), -1)
    quiet = ~positive.any(axis=1)
    if (~quiet).any():
        picks[~quiet] = _picks(catalog, positive[~quiet], drivers_df[~quiet], k, diversify)
    if quiet.any():
        states = drivers_df.loc[quiet, [c for c in STATE_COLUMNS.values() if c in drivers_df]]
        codes = states.groupby(list(states.columns), dropna=False, sort=False).ngroup().to_numpy()
        _, first = np.unique(codes, return_index=True)
        distinct = np.zeros((len(first), len(GROUPS)))
        picks[quiet] = _picks(catalog, distinct, states.iloc[first], k, diversify)[codes]
    ids = np.array([s.id for s in catalog.strategies] + [""], dtype=object)  # pick -1 -> ""
    return pd.DataFrame(
        {c: ids[picks[:, j]] for j, c in enumerate(strategy_columns(k))}, index=drivers_df.index
    )


def _picks(
    catalog: Catalog, positive: np.ndarray, states: pd.DataFrame, k: int, diversify: bool
) -> np.ndarray:
    """Rows x k indices into the catalog's strategies (-1: none), for positive group drivers
    (rows x GROUPS) and the rows' state columns."""
    strategies, n = catalog.strategies, len(positive)
    up = np.array([[g in s.up_groups for g in GROUPS] for s in strategies], dtype=bool)
    candidate = _eligible(strategies, states)
    full = _gain(positive, up, np.zeros_like(positive, dtype=bool))
    specific = np.array([s.is_state_specific for s in strategies])
    candidate &= (full > 0) | specific
    rank = np.array([s.anchor_rank for s in strategies])
    order = np.broadcast_to(np.arange(len(strategies)), candidate.shape)
    rows, covered = np.arange(n), np.zeros_like(positive, dtype=bool)
    picks = np.full((n, k), -1)
    for j in range(k):
        gain = _gain(positive, up, covered) if diversify else full
        first = np.where(candidate, -rank, 1)  # non-candidates sort last
        best = np.lexsort((order, -full, -gain, first), axis=-1)[:, 0]
        ok = candidate[rows, best]
        picks[:, j] = np.where(ok, best, -1)
        candidate[rows[ok], best[ok]] = False
        covered |= up[best] & ok[:, None]
    return picks


def _gain(positive: np.ndarray, up: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Rows x strategies: summed positive contributions of uncovered up-groups, in GROUPS order."""
    total = np.zeros((positive.shape[0], up.shape[0]))
    for j in range(len(GROUPS)):
        open_value = np.where(covered[:, j], 0.0, positive[:, j])
        total = total + np.where(up[None, :, j], open_value[:, None], 0.0)
    return total


def _eligible(strategies: tuple[Strategy, ...], drivers_df: pd.DataFrame) -> np.ndarray:
    eligible = np.ones((len(drivers_df), len(strategies)), dtype=bool)
    for dim, column in STATE_COLUMNS.items():
        if column not in drivers_df.columns:
            raise ValueError(f"drivers_df lacks the state column {column!r}")
        values = DIMENSIONS[dim]
        codes = pd.Categorical(drivers_df[column], categories=values).codes
        if (codes < 0).any():
            bad = sorted(set(drivers_df[column][codes < 0].astype(str)))
            raise ValueError(f"unknown {column} values {bad}; expected one of {values}")
        allowed = np.array(
            [[v in s.applies_to.get(dim, values) for v in values] for s in strategies]
        )
        eligible &= allowed[:, codes].T
    return eligible


# --- documentation --------------------------------------------------------------------------------
def catalog_markdown(catalog: Catalog) -> str:
    """The catalog as Markdown tables (pasted into docs/strategies.md; regenerate, do not edit)."""
    docs: dict[str, list[Any]] = {}
    for s in catalog.strategies:
        docs.setdefault(s.source_file, [s.source_title, 0, 0])[1] += 1
        for src in s.see_also:
            docs.setdefault(src.file, [src.title, 0, 0])[2] += 1
    lines = [
        f"Catalog version {catalog.version}: {len(catalog.strategies)} strategies.",
        "",
        "| file | title | strategies | also cited |",
        "|---|---|---|---|",
        *(f"| {f} | {_cell(t)} | {n} | {m} |" for f, (t, n, m) in sorted(docs.items())),
        "",
        "| id | 中文 | English | source | applies to | triggers | also cited in |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in catalog.strategies:
        applies = "; ".join(f"{d}: {', '.join(v)}" for d, v in s.applies_to.items()) or "any"
        triggers = "; ".join(
            f"{d}: {', '.join(g for g, dd in s.triggers if dd == d)}"
            for d in DIRECTIONS
            if any(dd == d for _, dd in s.triggers)
        )
        also = "<br>".join(f"{src.file} § {src.section}" for src in s.see_also)
        cells = [
            f"`{s.id}`",
            s.name_zh,
            s.name_en,
            f"{s.source_file} § {s.section}",
            applies + (" (**anchor**)" if s.anchor else ""),
            triggers or "—",
            also or "—",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
