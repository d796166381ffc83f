"""Plot data on fixed grids and the figures drawn from them."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from features.labels import CHURNED
from models.columns import CHURN_PROBABILITY
from models.evaluation.plots import PLOTS, compute_figures, compute_plot_data


@pytest.fixture(scope="module")
def plot_data(trained):
    return compute_plot_data(trained.predictions, bins=10)


def test_curves_are_on_fixed_grids_with_one_column_per_model(plot_data):
    assert set(plot_data) == set(PLOTS)
    for name, x in (("roc", "fpr"), ("pr", "recall")):
        frame = plot_data[name]
        assert len(frame) == 101 and frame[x].iloc[0] == 0 and frame[x].iloc[-1] == 1
        assert {"lightgbm", "logistic", "btyd"} <= set(frame.columns)
    roc = plot_data["roc"]
    assert (np.diff(roc["lightgbm"]) >= 0).all() and roc["lightgbm"].iloc[-1] == 1
    assert (np.diff(plot_data["pr"]["lightgbm"]) <= 1e-12).all()  # interpolated precision


def test_lift_reaches_every_churner_and_beats_random(plot_data, trained):
    lift = plot_data["lift"]
    # random targeting captures the share it targets; every model reaches all churners at 100 %
    np.testing.assert_array_equal(lift["random"], lift["targeted"])
    assert lift["lightgbm"].iloc[-1] == 1.0
    assert (lift["lightgbm"] >= lift["random"] - 0.1).all()
    # the top decile, recomputed from the predictions: LightGBM's capture there beats random's
    # (0.1) by more than three standard errors of a random draw of that many rows
    rows = trained.predictions[trained.predictions[CHURNED].notna()]
    y = rows[CHURNED].to_numpy(int)
    top = np.argsort(-rows[CHURN_PROBABILITY].to_numpy(), kind="stable")[: math.ceil(0.1 * len(y))]
    captured = y[top].sum() / y.sum()
    at_decile = lift.loc[np.isclose(lift["targeted"], 0.1), "lightgbm"].item()
    assert at_decile == pytest.approx(captured, abs=1e-4)
    margin = 3 * math.sqrt(0.1 * 0.9 / y.sum())
    assert captured > 0.1 + margin


def test_calibration_bins_and_transitions(plot_data, trained):
    calibration = plot_data["calibration"]
    assert len(calibration) == 10 and calibration["predicted"].iloc[0] == 0.05
    observed = calibration["lightgbm"].dropna()
    assert observed.between(0, 1).all()
    transitions = plot_data["transitions"]
    assert len(transitions) == len(trained.predictions)
    assert set(transitions.columns) == {"tier", "next_tier", "predicted_next_tier"}


def test_figures_render_to_png(plot_data, trained):
    figures = compute_figures(plot_data, trained.predictions)
    assert set(figures) == {"roc", "pr", "calibration", "lift", "transitions"}
    for figure in figures.values():
        assert isinstance(figure, Figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
