"""Plot data for `dvc plots` (small tables on fixed grids, one column per model) and the same
plots as matplotlib figures for PNGs and MLflow. Pure: figures are returned, never saved here.

- roc: false-positive-rate grid -> true-positive rate per churn model
- pr: recall grid -> interpolated precision (the best precision at that recall or more)
- calibration: probability-bin centre -> observed churn rate per model (empty bins are blank)
- lift: share of customers targeted (highest scores first) -> share of churners captured
- transitions: one row per test row: tier, next_tier, predicted_next_tier (LightGBM's argmax)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from features.labels import CHURNED, NEXT_TIER
from features.registry import TIER
from features.spec import TIERS
from models.columns import NEXT_TIER_COLUMNS
from models.evaluation.metrics import CHURN_MODELS, transition_matrices

GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
PREDICTED_NEXT_TIER = "predicted_next_tier"
PLOTS = ("roc", "pr", "calibration", "lift", "transitions")


def _scored(predictions: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rows = predictions[predictions[CHURNED].notna()]
    return rows[CHURNED].to_numpy(int), {m: rows[c].to_numpy() for m, c in CHURN_MODELS.items()}


def roc_curve_data(predictions: pd.DataFrame) -> pd.DataFrame:
    y, scores = _scored(predictions)
    out = {"fpr": GRID}
    for model, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        out[model] = np.round(np.interp(GRID, fpr, tpr), 4)
    return pd.DataFrame(out)


def pr_curve_data(predictions: pd.DataFrame) -> pd.DataFrame:
    y, scores = _scored(predictions)
    out = {"recall": GRID}
    for model, p in scores.items():
        precision, recall, _ = precision_recall_curve(y, p)
        order = np.argsort(recall, kind="stable")
        recall, best = recall[order], np.maximum.accumulate(precision[order][::-1])[::-1]
        at = np.minimum(np.searchsorted(recall, GRID, side="left"), len(recall) - 1)
        out[model] = np.round(best[at], 4)
    return pd.DataFrame(out)


def calibration_data(predictions: pd.DataFrame, bins: int) -> pd.DataFrame:
    y, scores = _scored(predictions)
    centres = (np.arange(bins) + 0.5) / bins
    out = {"predicted": np.round(centres, 4), "perfect": np.round(centres, 4)}
    for model, p in scores.items():
        which = np.clip((p * bins).astype(int), 0, bins - 1)
        n = np.bincount(which, minlength=bins)
        hits = np.bincount(which, weights=y, minlength=bins)
        out[model] = np.round(np.where(n > 0, hits / np.maximum(n, 1), np.nan), 4)
    return pd.DataFrame(out)


def lift_data(predictions: pd.DataFrame) -> pd.DataFrame:
    y, scores = _scored(predictions)
    targeted = GRID[1:]
    out = {"targeted": targeted, "random": targeted}
    for model, p in scores.items():
        captured = np.cumsum(y[np.argsort(-p, kind="stable")]) / max(y.sum(), 1)
        at = np.maximum(np.ceil(targeted * len(y)).astype(int), 1) - 1
        out[model] = np.round(captured[at], 4)
    return pd.DataFrame(out)


def transition_data(predictions: pd.DataFrame) -> pd.DataFrame:
    proba = predictions[list(NEXT_TIER_COLUMNS)].to_numpy()
    predicted = np.asarray(TIERS, dtype=object)[proba.argmax(axis=1)]
    return pd.DataFrame(
        {
            TIER: predictions[TIER].to_numpy(),
            NEXT_TIER: predictions[NEXT_TIER].to_numpy(),
            PREDICTED_NEXT_TIER: predicted,
        }
    )


def compute_plot_data(predictions: pd.DataFrame, bins: int) -> dict[str, pd.DataFrame]:
    return {
        "roc": roc_curve_data(predictions),
        "pr": pr_curve_data(predictions),
        "calibration": calibration_data(predictions, bins),
        "lift": lift_data(predictions),
        "transitions": transition_data(predictions),
    }


def _curves(data: pd.DataFrame, x: str, title: str, xlabel: str, ylabel: str, ref: str | None):
    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    for model in CHURN_MODELS:
        ax.plot(data[x], data[model], label=model, marker="o" if x == "predicted" else None)
    if ref is not None:
        ax.plot(data[x], data[ref], linestyle="--", color="grey", label=ref)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def _heatmap(ax, matrix: pd.DataFrame, title: str) -> None:
    values = matrix.to_numpy(dtype=float)
    ax.imshow(np.nan_to_num(values), vmin=0, vmax=1, cmap="Blues")
    for (i, j), v in np.ndenumerate(values):
        colour = "white" if v > 0.6 else "black"
        ax.text(j, i, "" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", color=colour)
    ax.set_xticks(range(len(TIERS)), TIERS)
    ax.set_yticks(range(len(TIERS)), TIERS)
    ax.set(title=title, xlabel="tier at t+H", ylabel="tier at t")


def transition_figure(predictions: pd.DataFrame) -> Figure:
    matrices = transition_matrices(predictions)
    fig = Figure(figsize=(11, 4.5), dpi=100)
    for ax, name in zip(fig.subplots(1, 2), ("actual", "lightgbm"), strict=True):
        frame = pd.DataFrame(matrices[name]).T.reindex(index=TIERS, columns=TIERS).astype(float)
        _heatmap(ax, frame, f"tier transitions: {name}")
    fig.tight_layout()
    return fig


def compute_figures(data: dict[str, pd.DataFrame], predictions: pd.DataFrame) -> dict[str, Figure]:
    return {
        "roc": _curves(data["roc"], "fpr", "ROC (test snapshots)", "false positive rate",
                       "true positive rate", None),
        "pr": _curves(data["pr"], "recall", "Precision-recall", "recall", "precision", None),
        "calibration": _curves(data["calibration"], "predicted", "Calibration",
                               "predicted churn probability", "observed churn rate", "perfect"),
        "lift": _curves(data["lift"], "targeted", "Cumulative capture", "share targeted",
                        "share of churners captured", "random"),
        "transitions": transition_figure(predictions),
    }  # fmt: skip
