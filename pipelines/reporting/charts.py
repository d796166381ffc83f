"""The report's charts: matplotlib figures rendered to inline SVG strings (pure, no files).

Charts carry English labels only (the report's HTML text holds the Chinese strategy names), so
they never depend on a CJK font being installed. ``svg_markup`` makes each SVG fit for inlining
next to others in one HTML document: no XML prolog, DOCTYPE or metadata, no namespace URLs, and
every id prefixed with the chart's name so that two charts never share an id.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

PALETTE = {"actual": "#1f4e79", "predicted": "#7fb3e6", "bar": "#2f6fb3", "accent": "#c0392b"}
BAND_COLOURS = ("#cfe3c8", "#f6d28b", "#e07a6a")  # low, watch, at risk
_RC = {
    "svg.hashsalt": "tierwise",  # deterministic clip-path ids: the same inputs give the same SVG
    "svg.fonttype": "path",  # glyphs as paths: the chart looks the same without the font
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}
_STRIP = (
    re.compile(r"<\?xml[^>]*\?>\s*"),
    re.compile(r"<!DOCTYPE[^>]*>\s*"),
    re.compile(r"<metadata>.*?</metadata>\s*", re.S),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
)


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def svg_markup(fig: Figure, name: str) -> str:
    """``fig`` as an ``<svg>`` element for inlining, its ids prefixed with ``name``."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None}, transparent=True)
    svg = buffer.getvalue()
    for pattern in _STRIP:
        svg = pattern.sub("", svg)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", svg)
    label = f'<svg role="img" aria-label="{name} chart" class="chart" data-chart="{name}"'
    return svg.replace("<svg", label, 1).strip()


def _unit(label: str, currency: str) -> str:
    return f"{label} ({currency})" if currency else label


def compact_amount(x: float, _pos: object = None) -> str:
    """An axis amount short enough not to collide with its neighbours: 950, 12k, 3.5M, 1.2B."""
    for bound, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= bound:
            return f"{x / bound:,.1f}".rstrip("0").rstrip(".") + suffix
    return f"{x:,.0f}"


def kpi_chart(kpis: pd.DataFrame, currency: str = "") -> Figure:
    """Actual vs predicted churn rate, and mean CLV, per tier (``kpis`` indexed by tier)."""
    with matplotlib.rc_context(_RC):
        fig = _figure(9.5, 3.2)
        left, right = fig.subplots(1, 2)
        x, width = np.arange(len(kpis)), 0.38
        left.bar(x - width / 2, kpis["churn_rate"], width, label="actual", color=PALETTE["actual"])
        left.bar(
            x + width / 2,
            kpis["predicted_churn_rate"],
            width,
            label="predicted",
            color=PALETTE["predicted"],
        )
        top = np.nanmax([kpis["churn_rate"].max(), kpis["predicted_churn_rate"].max(), 0.01])
        left.set(
            title="Churn rate by tier", xticks=x, xticklabels=list(kpis.index), ylim=(0, top * 1.25)
        )
        left.yaxis.set_major_formatter(PercentFormatter(1.0))
        left.legend(frameon=False, ncols=2, loc="upper center")
        right.bar(x, kpis["clv_mean"], 0.6, color=PALETTE["bar"])
        right.set(
            title="Mean customer lifetime value by tier", xticks=x, xticklabels=list(kpis.index),
            ylabel=_unit("mean CLV", currency),
        )  # fmt: skip
        right.yaxis.set_major_formatter(FuncFormatter(compact_amount))
    return fig


def _boxes(ax, risk: pd.DataFrame, column: str, levels: Sequence[str], threshold: float) -> None:
    data = [risk.loc[risk[column] == level, "churn_probability"].to_numpy() for level in levels]
    ax.boxplot(
        data,
        orientation="horizontal",
        tick_labels=list(levels),
        widths=0.55,
        patch_artist=True,
        boxprops={"facecolor": "#dbe8f5", "edgecolor": "#1f4e79"},
        medianprops={"color": "#1f4e79"},
        flierprops={"markersize": 2, "alpha": 0.4},
    )
    ax.axvline(threshold, color=PALETTE["accent"], linestyle="--", linewidth=1)
    ax.set(xlim=(0, 1), xlabel="churn probability")
    ax.invert_yaxis()


def _bands(ax, shares: pd.DataFrame) -> None:
    left = np.zeros(len(shares))
    for band, colour in zip(shares.columns, BAND_COLOURS, strict=True):
        ax.barh(shares.index, shares[band], left=left, color=colour, label=band, height=0.6)
        left += shares[band].to_numpy()
    ax.set(xlim=(0, 1), xlabel="share of customers")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.invert_yaxis()


def risk_chart(
    risk: pd.DataFrame,
    bands: dict[str, pd.DataFrame],
    levels: dict[str, Sequence[str]],
    threshold: float,
) -> Figure:
    """Per dimension (tier, lifecycle_state): box plots of the churn probability and the share
    of customers in each risk band. ``bands[dim]`` is levels x bands (shares)."""
    with matplotlib.rc_context(_RC):
        fig = _figure(9.5, 5.2)
        axes = fig.subplots(2, len(levels), squeeze=False)
        for j, (column, names) in enumerate(levels.items()):
            label = column.replace("_", " ")
            _boxes(axes[0, j], risk, column, names, threshold)
            axes[0, j].set_title(f"Churn probability by {label}")
            _bands(axes[1, j], bands[column].reindex(list(names)))
            axes[1, j].set_title(f"Risk bands by {label}")
        handles, labels = axes[1, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    return fig


def _heatmap(ax, matrix: pd.DataFrame, title: str) -> None:
    values = matrix.to_numpy(dtype=float)
    ax.imshow(np.nan_to_num(values), vmin=0, vmax=1, cmap="Blues")
    for (i, j), v in np.ndenumerate(values):
        text = "" if np.isnan(v) else f"{v:.0%}"
        ax.text(j, i, text, ha="center", va="center", color="white" if v > 0.55 else "#1a1a1a")
    ax.set_xticks(range(len(matrix.columns)), list(matrix.columns))
    ax.set_yticks(range(len(matrix.index)), list(matrix.index))
    ax.set(title=title, xlabel="tier at t + H", ylabel="tier at t")
    ax.spines[:].set_visible(False)


def transition_chart(matrices: dict[str, pd.DataFrame]) -> Figure:
    """One heatmap per matrix (rows: tier at t, columns: tier at t+H, cells: row shares)."""
    with matplotlib.rc_context(_RC):
        fig = _figure(4.6 * len(matrices), 3.9)
        for ax, (name, matrix) in zip(
            fig.subplots(1, len(matrices)), matrices.items(), strict=True
        ):
            _heatmap(ax, matrix, f"{name.capitalize()} transitions")
    return fig


def drivers_chart(drivers: pd.DataFrame) -> Figure:
    """Mean |SHAP| per feature group (bars) with the share of customers it pushes up."""
    table = drivers.sort_values("mean_abs", kind="stable")
    with matplotlib.rc_context(_RC):
        fig = _figure(5.6, 0.36 * len(table) + 1.1)
        ax = fig.add_subplot()
        bars = ax.barh(table["group"], table["mean_abs"], color=PALETTE["bar"], height=0.6)
        labels = [f"up for {s:.0%}" for s in table["share_up"]]
        ax.bar_label(bars, labels=labels, padding=4, fontsize=8, color="#444444")
        ax.set(title="Drivers of churn risk by feature group", xlabel="mean |SHAP| (log-odds)")
        ax.set_xlim(0, table["mean_abs"].max() * 1.3 if len(table) else 1)
    return fig


def playbook_chart(playbook: pd.DataFrame, top: int = 12, currency: str = "") -> Figure:
    """Value at risk addressed per strategy (English names; the top ``top`` strategies). The
    x ticks are compact amounts (``12M``), at most six, so that they never overlap."""
    table = playbook[playbook["customers_at_risk"] > 0].head(top).iloc[::-1]
    with matplotlib.rc_context(_RC):
        fig = _figure(9.5, 0.36 * max(len(table), 1) + 1.2)
        ax = fig.add_subplot()
        bars = ax.barh(
            table["name_en"], table["value_at_risk"], color=PALETTE["accent"], height=0.6
        )
        labels = [f"{n:,} customers" for n in table["customers_at_risk"]]
        ax.bar_label(bars, labels=labels, padding=4, fontsize=8, color="#444444")
        ax.set(
            title="Value at risk addressed by each strategy",
            xlabel=_unit("value at risk", currency),
        )
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(compact_amount))
        ax.set_xlim(0, max(table["value_at_risk"].max() * 1.3, 1) if len(table) else 1)
    return fig


CAUSE_LABELS = {"runoff": "Run-off", "refinanced": "Refinanced", "credit_exit": "Credit exit",
                "lapsed": "Lapsed"}  # fmt: skip


def incidence_chart(incidence: pd.DataFrame) -> Figure:
    """Cumulative incidence curves (Aalen–Johansen) by month: one panel per cause, one line per
    tier (``*``: the whole book, dashed)."""
    causes = [c for c in incidence.columns if c not in ("tier", "month")]
    with matplotlib.rc_context(_RC):
        fig = _figure(2.6 * max(len(causes), 1), 2.8)
        axes = np.atleast_1d(fig.subplots(1, max(len(causes), 1), sharey=True))
        for ax, cause in zip(axes, causes, strict=False):
            for tier, curve in incidence.groupby("tier", sort=True):
                curve = curve.sort_values("month")
                book = tier == "*"
                ax.plot(curve["month"], curve[cause], label="whole book" if book else tier,
                        linestyle="--" if book else "-", linewidth=1.6 if book else 1.1,
                        color="#444444" if book else None)  # fmt: skip
            ax.set(title=CAUSE_LABELS.get(cause, cause), xlabel="months after the snapshot")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes[0].set_ylabel("cumulative incidence")
        axes[-1].legend(fontsize=7, frameon=False, loc="upper left")
    return fig
