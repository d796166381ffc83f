"""The reference profile: what the book looked like when the model was trained, as compact JSON.

Stored inside every registered churn model (``profile.json``, written by the evaluate stage) so
the batch job and every consumer compare against the same reference; ``tierwise monitor
--reference DATE`` builds one from the book at another date instead. It holds counts, not
shares, so the monitor knows the reference's size (the noise level of PSI and of the tests):

- ``features``: per model feature its group, the inner quantile edges of ``bins`` bins on the
  non-missing values, the counts per bin (the last count: missing values), min and max;
- ``states``: counts of each category of the state columns (tier: the tier mix; lifecycle,
  loyalty level, loyalty stage);
- ``score``: quantile edges and counts of the churn probability (customers active at t), and the
  counts per risk band;
- ``tables``: the raw tables' categories (product, segment, channel, …) and rows per month,
  over the ``window_days`` before the reference's last date (models/monitoring/quality.py);
- ``performance``: the CBPE estimate (and the realised metrics, when labelled) on the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "tierwise-monitor-profile"
FORMAT_VERSION = 1


def inner_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Distinct inner quantile edges of the non-missing values (ties merge bins)."""
    x = values[~np.isnan(values)]
    if len(x) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of bins (-inf, e1], (e1, e2], …, (e_last, inf), then the missing values."""
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    which = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(which, minlength=len(edges) + 1)
    return np.append(counts, missing.sum()).astype(np.int64)


def numeric_entry(values: np.ndarray, bins: int) -> dict[str, Any]:
    values = np.asarray(values, dtype=float)
    edges = inner_edges(values, bins)
    present = values[~np.isnan(values)]
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in bin_counts(values, edges)],
        "min": float(present.min()) if len(present) else None,
        "max": float(present.max()) if len(present) else None,
    }


def category_counts(values: pd.Series) -> dict[str, int]:
    """Counts per category; missing values under ``""``."""
    counts = values.astype("object").where(values.notna(), "").astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.sort_index().items()}


def build_profile(
    rows: pd.DataFrame,
    groups: Mapping[str, str],
    states: Sequence[str],
    scores: pd.DataFrame,
    bins: int,
    reference: Mapping[str, Any],
) -> dict[str, Any]:
    """The profile of feature ``rows`` (all customers known at the reference dates) and their
    churn-model output ``scores`` (churn_probability, risk_band); ``reference`` describes it."""
    from models.columns import CHURN_PROBABILITY, RISK_BAND

    p = scores[CHURN_PROBABILITY].to_numpy(dtype=float)
    scored = ~np.isnan(p)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "reference": dict(reference) | {"rows": len(rows)},
        "bins": bins,
        "features": {
            name: {"group": group} | numeric_entry(rows[name].to_numpy(dtype=float), bins)
            for name, group in groups.items()
        },
        "states": {c: category_counts(rows[c]) for c in states if c in rows},
        "score": numeric_entry(p[scored], bins)
        | {"bands": category_counts(scores.loc[scored, RISK_BAND])},
    }


class ProfileError(ValueError):
    """A profile this tierwise cannot read (another format) or that lacks what is asked."""


def check_profile(profile: Mapping[str, Any]) -> None:
    if profile.get("format") != FORMAT or profile.get("format_version") != FORMAT_VERSION:
        raise ProfileError(
            f"reference profile of format {profile.get('format')!r} "
            f"{profile.get('format_version')!r}; this tierwise reads {FORMAT} {FORMAT_VERSION}: "
            "register the model again or pass --reference DATE"
        )
