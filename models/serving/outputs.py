"""What the registered models compute, from a LightGBM booster and plain data: one implementation
for the in-process models (models/serving/pyfunc.py) and the stored ones (model_code.py).

``spec`` is the JSON document a registered version stores next to its trees
(models/serving/artifacts.py writes it; docs/scoring.md, "How a version is stored"): features,
feature groups, the iteration to predict with, the churn calibrator as numbers, the tier class
codes, and the churn model's scoring outputs (risk bands, at-risk bands, k, population). Nothing
here needs a tierwise class: the stored model code calls these functions by name, so their names
and signatures are a contract with every registered version (a change takes a new
``FORMAT_VERSION``, and versions of the older format must be registered again).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit

from features.registry import LIFECYCLE_STATE
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS, RISK_BAND
from models.explain.frame import (
    customer_states,
    explain_frame,
    explanation_columns,
    feature_contributions,
)
from models.explain.reasons import feature_templates
from models.spec import EXPLAIN_POLICIES
from models.strategies.catalog import Catalog, strategy_details

FORMAT_VERSION = 1  # of the spec document; model_code.py refuses any other
Calibrate = Callable[[np.ndarray], np.ndarray]


class NullFrame(pd.DataFrame):
    """The registered models' answer: a DataFrame whose ``to_dict`` gives ``None`` for every
    missing value. MLflow's scoring server turns a DataFrame into JSON with
    ``to_dict(orient="records")`` and ``json.dump``, which writes a float NaN as a bare ``NaN``
    (not JSON, RFC 8259); with ``None`` it writes ``null``. Everything else (dtypes, NaN in the
    float columns, arithmetic, Parquet) is pandas' own; operations return plain DataFrames."""

    def to_dict(self, *args: Any, **kwargs: Any) -> Any:
        plain = pd.DataFrame(self)
        return plain.astype(object).where(plain.notna(), None).to_dict(*args, **kwargs)


def _text_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns with ``None`` where a value is missing ("" inside the explain code)."""
    text = [c for c in frame.columns if frame[c].dtype == object]
    return frame.assign(
        **{c: frame[c].where(frame[c].ne("") & frame[c].notna(), None) for c in text}
    )


def request_problem(spec: Mapping[str, Any], frame: pd.DataFrame, params: Any) -> str | None:
    """One line saying why a request cannot be answered (None when it can): a missing feature
    column, an unknown ``explain`` policy. Checked before any work, so a client gets this line
    (models/serving/model_code.py answers HTTP 400 with it), never a traceback."""
    missing = [name for name in spec["features"] if name not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        return f"input lacks {len(missing)} model feature column(s): {shown}"
    explain = (params or {}).get("explain", "all")
    if spec["kind"] == "churn" and explain not in EXPLAIN_POLICIES:
        return f"params explain must be one of {', '.join(EXPLAIN_POLICIES)}; got {explain!r}"
    return None


def calibrate(calibrator: Mapping[str, Any], score: np.ndarray) -> np.ndarray:
    """``ScoreCalibrator.predict`` from its ``to_dict()``, with scikit-learn's arithmetic.

    Isotonic: ``IsotonicRegression.predict`` clips to [x_min, x_max], then SciPy's ``interp1d``
    (linear, float64) delegates to ``np.interp`` and sets points outside the thresholds to NaN;
    a single threshold predicts its constant. Platt: ``LogisticRegression.predict_proba`` is
    ``expit(X @ coef.T + intercept)`` for a binary model.
    """
    score = np.asarray(score, dtype=float).reshape(-1)
    if calibrator["method"] == "platt":
        coef, intercept = np.asarray(calibrator["coef"]), np.asarray(calibrator["intercept"])
        return expit((score.reshape(-1, 1) @ coef.T + intercept).reshape(-1))
    if calibrator["method"] != "isotonic":
        raise ValueError(f"unknown calibration method {calibrator['method']!r}")
    x = np.asarray(calibrator["x_thresholds"], dtype=float)
    y = np.asarray(calibrator["y_thresholds"], dtype=float)
    t = np.clip(score, calibrator["x_min"], calibrator["x_max"])
    if len(y) == 1:
        return y.repeat(t.shape)
    order = np.argsort(x, kind="mergesort")  # interp1d sorts its points the same way
    x, y = x[order], y[order]
    out = np.interp(t, x, y)
    out[(t < x[0]) | (t > x[-1])] = np.nan
    return out


def risk_band(probability: np.ndarray, bands: Sequence[Sequence[Any]]) -> np.ndarray:
    """The band of each probability (at or above its lower bound); "" where it is NaN.
    ``bands``: (name, lowest probability in it) pairs, ascending."""
    p = np.asarray(probability, dtype=float)
    names = np.array([name for name, _ in bands] + [""], dtype=object)
    index = np.searchsorted([bound for _, bound in bands], p, side="right") - 1
    return names[np.where(np.isnan(p), len(bands), np.maximum(index, 0))]


def explained_rows(
    band: np.ndarray,
    active: np.ndarray,
    explain: str,
    at_risk: Sequence[str],
    watch: Sequence[str] = (),
):
    """Which rows get TreeSHAP reasons: every active customer, the at-risk bands, the at-risk
    and watch bands, or none."""
    if explain not in EXPLAIN_POLICIES:
        raise ValueError(f"explain must be one of {EXPLAIN_POLICIES}, got {explain!r}")
    if explain == "none":
        return np.zeros(len(band), dtype=bool)
    if explain == "all":
        return active.copy()
    bands = list(at_risk) + (list(watch) if explain == "watch" else [])
    return active & np.isin(band, bands)


def feature_matrix(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """The feature columns, in training order, as float64 (missing columns fail loudly)."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise KeyError(f"input lacks model feature column(s): {', '.join(missing[:5])}")
    return frame[list(features)].astype("float64")


def churn_frame(
    frame: pd.DataFrame,
    booster: lgb.Booster,
    spec: Mapping[str, Any],
    link: Calibrate,
    catalog: Catalog | None,
    explain: str = "all",
) -> pd.DataFrame:
    """The registered churn model's answer for feature rows (docs/scoring.md): the calibrated
    probability (``link`` of the raw score); with ``spec["outputs"]`` the probability for the
    population only (NaN elsewhere), its risk band, reasons and strategies from ``catalog`` with
    each strategy's names, action and source; missing text is None (``NullFrame``)."""
    names, iteration = spec["features"], spec["num_iteration"]
    if spec.get("outputs") is None:
        raw = booster.predict(feature_matrix(frame, names), num_iteration=iteration, raw_score=True)
        return NullFrame({CHURN_PROBABILITY: link(raw)}, index=frame.index)
    o, rows = spec["outputs"], frame.reset_index(drop=True)
    states = customer_states(rows)
    active = states[LIFECYCLE_STATE].isin(o["population"]).to_numpy()
    # the trees run for the population only (the active and new customers): the others get NaN,
    # and a row's score does not depend on the rows beside it
    probability = np.full(len(rows), np.nan)
    if active.any():
        chosen = feature_matrix(rows[active], names)
        probability[active] = link(booster.predict(chosen, num_iteration=iteration, raw_score=True))
    band = risk_band(probability, o["risk_bands"])
    mask = explained_rows(band, active, explain, o["at_risk_bands"], o.get("watch_bands", ()))
    # TreeSHAP for the chosen rows only; the others get no reasons and their state's strategies
    chosen = feature_matrix(rows[mask], names)
    contributions = feature_contributions(booster, chosen, num_iteration=iteration)
    templates = feature_templates(names, currency=o.get("currency", ""))
    explained = explain_frame(
        None, rows, names, spec["groups"], catalog, o["k"], rows=mask,
        contributions=contributions, link=link, templates=templates,
        min_contribution=o.get("min_contribution", 0.0),
    )  # fmt: skip
    head = pd.DataFrame({CHURN_PROBABILITY: probability, RISK_BAND: band})
    reasons = explained[explanation_columns(o["k"])]
    details = strategy_details(catalog, reasons, o["k"])
    out = pd.concat([head, reasons, details], axis=1).set_axis(frame.index)
    return NullFrame(_text_nulls(out))


def tier_frame(frame: pd.DataFrame, booster: lgb.Booster, spec: Mapping[str, Any]) -> pd.DataFrame:
    """The registered tier model's answer: the probability of each tier at t+H (a tier absent
    from training gets 0)."""
    x = feature_matrix(frame, spec["features"])
    raw = np.asarray(booster.predict(x, num_iteration=spec["num_iteration"]))
    full = np.zeros((len(frame), len(NEXT_TIER_COLUMNS)))
    full[:, spec["class_codes"]] = raw.reshape(len(frame), -1)
    return NullFrame(full, columns=list(NEXT_TIER_COLUMNS), index=frame.index)


def read_model_spec(path: str | Path, kind: str) -> dict:
    """A registered model's ``model.json``, refused unless of this format and ``kind`` (the
    models-from-code files of the survival and uplift models share the check)."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    if spec.get("format_version") != FORMAT_VERSION or spec.get("kind") != kind:
        raise ValueError(
            f"model format {spec.get('format_version')!r} of kind {spec.get('kind')!r}: "
            f"the installed tierwise reads {kind} models of format {FORMAT_VERSION}"
        )
    return spec
