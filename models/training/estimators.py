"""Unfitted estimators (``make_*``) and the two small estimators tierwise defines itself.

- ``ScoreCalibrator``: maps a LightGBM raw score (log-odds) to a calibrated probability, by
  isotonic regression or Platt scaling (a one-feature logistic regression).
- ``MarkovBaseline``: the empirical tier-transition matrix by current tier, additively smoothed.

Both follow scikit-learn's conventions: ``fit`` returns self, learned attributes end in ``_``.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features.spec import TIERS
from models.spec import BoosterParams, LogisticParams

FITTED_METHODS = ("isotonic", "platt")


def _booster_kwargs(params: BoosterParams, seed: int) -> dict:
    return dict(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        max_depth=params.max_depth,
        min_child_samples=params.min_child_samples,
        colsample_bytree=params.feature_fraction,
        subsample=params.bagging_fraction,
        subsample_freq=params.bagging_freq,
        reg_lambda=params.lambda_l2,
        n_jobs=params.num_threads,
        random_state=seed,
        deterministic=True,
        force_col_wise=True,
        verbose=-1,
    )


def make_churn_classifier(params: BoosterParams, seed: int) -> lgb.LGBMClassifier:
    """The LightGBM binary churn model (fit it with an eval_set for early stopping)."""
    return lgb.LGBMClassifier(objective="binary", **_booster_kwargs(params, seed))


def make_tier_classifier(params: BoosterParams, seed: int) -> lgb.LGBMClassifier:
    """The LightGBM multiclass next-tier model; classes are tier codes 0..3 (TIERS order)."""
    return lgb.LGBMClassifier(
        objective="multiclass", num_class=len(TIERS), **_booster_kwargs(params, seed)
    )


def survival_booster_params(params: BoosterParams, seed: int, n_classes: int) -> dict:
    """lgb.train params of the multiclass hazard model of models/survival/ (class 0: no churn
    this month). The native API keeps every class even when one is absent from the fit rows."""
    kwargs = _booster_kwargs(params, seed)
    kwargs.pop("n_estimators")
    return {"objective": "multiclass", "num_class": n_classes, **kwargs}


def make_logistic_baseline(params: LogisticParams, seed: int) -> Pipeline:
    """Logistic regression on median-imputed (plus missing indicators), standardised features."""
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed),
    )


def make_calibrator(method: str) -> ScoreCalibrator:
    if method not in FITTED_METHODS:
        raise ValueError(f"calibration method must be one of {FITTED_METHODS}, got {method!r}")
    return ScoreCalibrator(method=method)


def make_markov_baseline(alpha: float) -> MarkovBaseline:
    return MarkovBaseline(alpha=alpha)


class ScoreCalibrator(BaseEstimator):
    """Raw score (log-odds) -> probability; ``method`` is "isotonic" or "platt"."""

    def __init__(self, method: str = "platt") -> None:
        self.method = method

    def fit(self, score: ArrayLike, y: ArrayLike) -> ScoreCalibrator:
        score, y = np.asarray(score, dtype=float), np.asarray(y, dtype=float)
        if self.method == "isotonic":
            self.mapping_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.mapping_.fit(score, y)
        elif self.method == "platt":
            self.mapping_ = LogisticRegression(C=1e6, max_iter=1000)
            self.mapping_.fit(score.reshape(-1, 1), y.astype(int))
        else:
            raise ValueError(f"unknown calibration method {self.method!r}")
        return self

    def predict(self, score: ArrayLike) -> np.ndarray:
        """Calibrated probability of the positive class for each raw score."""
        score = np.asarray(score, dtype=float)
        if score.size == 0:  # scikit-learn refuses empty input; no rows, no probabilities
            return np.empty(0)
        if self.method == "isotonic":
            return self.mapping_.predict(score)
        return self.mapping_.predict_proba(score.reshape(-1, 1))[:, 1]

    def to_dict(self) -> dict:
        """The fitted map as plain numbers (JSON-ready), all that ``predict`` uses: isotonic, the
        interpolation thresholds and the clip bounds; Platt, the coefficient and intercept.
        ``models.serving.outputs.calibrate`` computes ``predict`` from it, bit for bit."""
        m = self.mapping_
        if self.method == "isotonic":
            return {
                "method": "isotonic",
                "x_thresholds": m.X_thresholds_.tolist(),
                "y_thresholds": m.y_thresholds_.tolist(),
                "x_min": float(m.X_min_),
                "x_max": float(m.X_max_),
            }
        return {"method": "platt", "coef": m.coef_.tolist(), "intercept": m.intercept_.tolist()}


class MarkovBaseline(BaseEstimator):
    """P(next tier | current tier) from counts over training rows, smoothed by ``alpha``.

    Rows of ``matrix_`` are current tiers, columns next tiers, both in TIERS order. A current
    tier never seen in training gets the overall next-tier distribution.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, current: ArrayLike, following: ArrayLike) -> MarkovBaseline:
        cur, nxt = tier_codes(current), tier_codes(following)
        k = len(TIERS)
        counts = np.zeros((k, k))
        np.add.at(counts, (cur, nxt), 1.0)
        smoothed = counts + self.alpha
        overall = counts.sum(axis=0) + self.alpha
        seen = counts.sum(axis=1) > 0
        rows = np.where(seen[:, None], smoothed, overall[None, :])
        self.counts_ = counts
        self.matrix_ = rows / rows.sum(axis=1, keepdims=True)
        return self

    def predict_proba(self, current: ArrayLike) -> np.ndarray:
        return self.matrix_[tier_codes(current)]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.matrix_, index=list(TIERS), columns=list(TIERS))


def tier_codes(tiers: ArrayLike) -> np.ndarray:
    """Tier labels -> integer codes in TIERS order (0 potential … 3 vip)."""
    codes = pd.Categorical(np.asarray(tiers, dtype=object), categories=TIERS).codes
    if (codes < 0).any():
        raise ValueError(f"unknown tier value(s); expected one of {TIERS}")
    return codes.astype(np.int64)
