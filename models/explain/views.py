"""The global view of the explanations, as data and as PNGs (issue 4, section 3).

- ``feature_importance`` / ``group_importance``: mean |SHAP| per feature and per group (a group's
  figure is the mean |sum of its features' contributions|, not the sum of the features' figures).
- ``strategy_coverage``: per strategy, the at-risk customers it is recommended to and their value
  at risk; ``strategy_citations`` / ``add_citations``: each strategy's source in the documents.
- ``plot_beeswarm`` / ``plot_group_importance``: write a PNG to the path given (Agg renderer;
  the figure is closed afterwards, so notebooks and servers keep no state).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.explain.frame import group_contributions
from models.explain.reasons import split_base
from models.strategies.catalog import Catalog, Strategy

STRATEGY = "strategy"
COVERAGE_COLUMNS = (
    STRATEGY,
    "customers_at_risk",
    "share_of_at_risk",
    "first_choice",
    "value_at_risk",
)


def feature_importance(contribs: pd.DataFrame, feature_groups: Mapping[str, str]) -> pd.DataFrame:
    """feature, group, mean_abs, mean (signed): one row per feature, largest mean_abs first."""
    features, values, _ = split_base(contribs)
    table = pd.DataFrame(
        {
            "feature": features,
            "group": [feature_groups[f] for f in features],
            "mean_abs": np.nanmean(np.abs(values), axis=0),
            "mean": np.nanmean(values, axis=0),
        }
    )
    return table.sort_values("mean_abs", ascending=False, kind="stable", ignore_index=True)


def group_importance(contribs: pd.DataFrame, feature_groups: Mapping[str, str]) -> pd.DataFrame:
    """group, mean_abs, mean, share_up (rows where the group pushes risk up), largest first."""
    groups = group_contributions(contribs, feature_groups)
    values = groups.to_numpy(dtype=float)
    table = pd.DataFrame(
        {
            "group": list(groups.columns),
            "mean_abs": np.nanmean(np.abs(values), axis=0),
            "mean": np.nanmean(values, axis=0),
            "share_up": np.mean(values > 0, axis=0),
        }
    )
    return table.sort_values("mean_abs", ascending=False, kind="stable", ignore_index=True)


def citation(strategy: Strategy) -> str:
    """``title (file), § section`` of the strategy's main source."""
    return f"{strategy.source_title} ({strategy.source_file}), § {strategy.section}"


def strategy_citations(catalog: Catalog) -> pd.DataFrame:
    """One row per strategy: names, source title, file, section and the citation string."""
    return pd.DataFrame(
        {
            STRATEGY: [s.id for s in catalog.strategies],
            "name_en": [s.name_en for s in catalog.strategies],
            "name_zh": [s.name_zh for s in catalog.strategies],
            "source_title": [s.source_title for s in catalog.strategies],
            "source_file": [s.source_file for s in catalog.strategies],
            "section": [s.section for s in catalog.strategies],
            "citation": [citation(s) for s in catalog.strategies],
        }
    )


def _strategy_columns(explanations: pd.DataFrame) -> list[str]:
    columns = [c for c in explanations.columns if re.fullmatch(r"strategy_\d+", c)]
    if not columns:
        raise KeyError("explanations hold no strategy_1..k columns")
    return sorted(columns, key=lambda c: int(c.split("_")[1]))


def add_citations(explanations: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """A new frame with strategy_j_citation next to every strategy_j ("" where no strategy)."""
    lookup = {s.id: citation(s) for s in catalog.strategies} | {"": ""}
    added = {f"{c}_citation": explanations[c].map(lookup) for c in _strategy_columns(explanations)}
    return explanations.assign(**added)


def strategy_coverage(
    explanations: pd.DataFrame,
    churn_probability: str,
    value_at_risk_column: str,
    *,
    threshold: float,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """Per strategy: the at-risk customers (``churn_probability`` >= ``threshold``) it is
    recommended to in any slot, their share of all at-risk customers, how often it is the first
    choice, and the sum of their ``value_at_risk_column`` (e.g. churn probability x yearly value).
    With a catalog, every strategy gets a row (0 when never chosen) and the citation columns.
    """
    columns = _strategy_columns(explanations)
    at_risk = explanations[explanations[churn_probability].to_numpy(dtype=float) >= threshold]
    ids = at_risk[columns].to_numpy(dtype=object)
    slots = np.broadcast_to(np.arange(1, len(columns) + 1), ids.shape)
    value = np.broadcast_to(at_risk[value_at_risk_column].to_numpy(dtype=float)[:, None], ids.shape)
    long = pd.DataFrame({STRATEGY: ids.ravel(), "slot": slots.ravel(), "value": value.ravel()})
    long = long[long[STRATEGY] != ""]
    table = long.groupby(STRATEGY, sort=False).agg(
        customers_at_risk=("slot", "size"),
        first_choice=("slot", lambda s: int((s == 1).sum())),
        value_at_risk=("value", "sum"),
    )
    if catalog is not None:
        table = table.reindex([s.id for s in catalog.strategies], fill_value=0)
    table = table.reset_index(names=STRATEGY)
    table["share_of_at_risk"] = table["customers_at_risk"] / max(len(at_risk), 1)
    table = table.loc[:, list(COVERAGE_COLUMNS)].astype({"value_at_risk": float})
    if catalog is not None:
        table = table.merge(strategy_citations(catalog), on=STRATEGY, how="left")
    order = ["value_at_risk", "customers_at_risk"]
    return table.sort_values(order, ascending=False, kind="stable", ignore_index=True)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig).print_png(path)
    return Path(path)


def plot_group_importance(importance: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of ``group_importance``'s mean_abs, written as a PNG at ``path``."""
    table = importance.sort_values("mean_abs", kind="stable")
    fig = Figure(figsize=(6, 0.4 * len(table) + 1.2), dpi=100)
    ax = fig.add_subplot()
    ax.barh(table["group"], table["mean_abs"], color="#3b7dd8")
    ax.set(title="Feature-group importance", xlabel="mean |SHAP| of the group (log-odds)")
    fig.tight_layout()
    return _save(fig, path)


def plot_beeswarm(
    contribs: pd.DataFrame,
    X: pd.DataFrame,
    path: Path,
    max_display: int = 20,
    max_rows: int = 5000,
) -> Path:
    """The SHAP summary (beeswarm) of ``contribs`` against the feature values ``X`` as a PNG;
    at most ``max_rows`` rows, a fixed random sample when there are more."""
    import matplotlib.pyplot as plt
    import shap

    features, values, base = split_base(contribs)
    data = X[features].to_numpy(dtype=float)
    if len(values) > max_rows:
        keep = np.sort(np.random.default_rng(0).choice(len(values), max_rows, replace=False))
        values, base, data = values[keep], base[keep], data[keep]
    explanation = shap.Explanation(
        values=values, base_values=base, data=data, feature_names=features
    )
    fig = plt.figure(figsize=(8, 0.35 * max_display + 1.5), dpi=100)
    try:
        shap.plots.beeswarm(explanation, max_display=max_display, show=False, plot_size=None)
        fig.axes[0].set_xlabel("SHAP value (log-odds)")
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)
