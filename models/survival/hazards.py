"""Discrete-time cause-specific hazards: LightGBM multiclass on person-period rows.

A (customer, snapshot t) row observed for m months (features/events.py) becomes m person-period
rows k = 1..m, each with the features at t and the month k (``surv_month``). The class of row k
is 0 (still a customer at the end of month k) or 1 + the cause index when the customer churned in
month k; the multinomial model then estimates the cause-specific hazards
h_c(k | x) = P(T = k, cause c | T >= k, x) for all causes at once (the discrete-time competing-
risks likelihood factorises into exactly these multinomial terms). From them:

- all-cause survival S(k) = prod_{j <= k} (1 - sum_c h_c(j));
- cumulative incidence F_c(k) = sum_{j <= k} S(j - 1) h_c(j);
- expected months to churn within K: the restricted mean sum_{k=0}^{K-1} S(k);
- the most likely cause: the largest F_c(K).

Speed: survivors' person-period rows (class 0, ~95 % of them) are subsampled with probability
``survivor_share`` and weighted by its inverse, which keeps the hazards unbiased. Prediction
walks every tree once per customer for all K months (models/survival/forest.py), not K times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.spec import CAUSES
from models.spec import SurvivalSpec
from models.survival.forest import MonthForest
from models.training.estimators import survival_booster_params

PERIOD = "surv_month"  # the person-period row's month k (a model input)


def person_periods(
    rows: pd.DataFrame, features: Sequence[str], survivor_share: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(X, class, weight) of the person-period rows of (customer, snapshot) rows with outcomes."""
    months = rows[SURV_MONTHS].to_numpy(dtype=np.int64)
    owner = np.repeat(np.arange(len(rows)), months)
    start = np.repeat(np.cumsum(months) - months, months)
    k = np.arange(len(owner)) - start + 1
    last = k == months[owner]
    cause = pd.Categorical(rows[SURV_CAUSE], categories=CAUSES).codes.astype(np.int64)
    churned = rows[SURV_EVENT].to_numpy() == 1.0
    y = np.where(last & churned[owner], cause[owner] + 1, 0)
    keep = (y > 0) | (np.random.default_rng(seed).random(len(y)) < survivor_share)
    weight = np.where(y > 0, 1.0, 1.0 / survivor_share)[keep]
    X = rows[list(features)].iloc[owner[keep]].reset_index(drop=True)
    return X.assign(**{PERIOD: k[keep].astype(np.float64)}), y[keep], weight


@dataclass(frozen=True)
class SurvivalOutputs:
    """Per row: hazards (n, K, causes), survival S(k) (n, K), incidence F_c(k) (n, K, causes)."""

    hazards: np.ndarray
    survival: np.ndarray
    incidence: np.ndarray

    @classmethod
    def from_hazards(cls, hazards: np.ndarray) -> SurvivalOutputs:
        survival = np.cumprod(1.0 - hazards.sum(axis=2), axis=1)
        before = np.concatenate([np.ones((len(hazards), 1)), survival[:, :-1]], axis=1)
        incidence = np.cumsum(before[:, :, None] * hazards, axis=1)
        return cls(hazards, survival, incidence)

    @property
    def months(self) -> int:
        return self.survival.shape[1]

    def expected_months(self) -> np.ndarray:
        """Restricted mean months to churn within K: sum_{k=0}^{K-1} S(k)."""
        return 1.0 + self.survival[:, :-1].sum(axis=1)

    def likely_cause(self) -> np.ndarray:
        return np.array(CAUSES, dtype=object)[self.incidence[:, -1, :].argmax(axis=1)]

    def churn_by(self, month: int) -> np.ndarray:
        return 1.0 - self.survival[:, month - 1]


@dataclass
class HazardModel:
    """The fitted multiclass booster and the features it reads (in order, PERIOD last)."""

    booster: lgb.Booster
    features: list[str]
    months: int
    log_prior: np.ndarray  # the init score: log class frequencies of the fit rows (weighted)

    def period_probabilities(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities of person-period rows (features, then PERIOD)."""
        raw = self.booster.predict(
            np.asarray(X, dtype=np.float64), raw_score=True,
            num_iteration=self.booster.best_iteration or None,
        ) + self.log_prior  # fmt: skip
        return _softmax(raw)

    @cached_property
    def forest(self) -> MonthForest:
        """The booster's trees, walked once per row for all K months (models/survival/forest.py)."""
        month = len(self.features)  # PERIOD is the last input column
        return MonthForest.of(self.booster, month, self.booster.best_iteration or None)

    def predict(self, frame: pd.DataFrame, batch_rows: int = 200_000) -> SurvivalOutputs:
        """Hazards of every row for months 1..K: the booster's person-period probabilities,
        with every tree walked once per row (``forest``); rows go ``batch_rows`` at a time."""
        X = frame[self.features].to_numpy(dtype=np.float64)
        n, K = len(X), self.months
        hazards = np.empty((n, K, len(self.log_prior) - 1))
        for start in range(0, n, batch_rows):
            block = np.zeros((min(batch_rows, n - start), X.shape[1] + 1))
            block[:, :-1] = X[start : start + batch_rows]
            raw = self.forest.raw_scores(block, K) + self.log_prior
            hazards[start : start + len(block)] = _softmax(raw)[:, :, 1:]
        return SurvivalOutputs.from_hazards(hazards)


def _softmax(raw: np.ndarray) -> np.ndarray:
    """Class probabilities of raw scores (classes on the last axis)."""
    p = np.exp(raw - raw.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def fit_hazard_model(
    fit: pd.DataFrame,
    validation: pd.DataFrame,
    features: Sequence[str],
    spec: SurvivalSpec,
    months: int,
) -> HazardModel:
    """Fit on ``fit``'s person-period rows; early stopping on ``validation``'s."""
    names = list(features)
    X, y, w = person_periods(fit, names, spec.survivor_share, spec.seed)
    Xv, yv, wv = person_periods(validation, names, spec.survivor_share, spec.seed + 1)
    n_classes = 1 + len(CAUSES)
    # LightGBM's multiclass objective starts every class at raw score 0 (p = 1/5): start from the
    # log class frequencies instead, so the trees learn only how customers differ from the book.
    counts = np.bincount(y, weights=w, minlength=n_classes) + 1.0
    log_prior = np.log(counts / counts.sum())
    params = survival_booster_params(spec.booster, spec.seed, n_classes)
    train = lgb.Dataset(X, y, weight=w, init_score=np.tile(log_prior, (len(y), 1)))
    valid = lgb.Dataset(Xv, yv, weight=wv, init_score=np.tile(log_prior, (len(yv), 1)))
    stop = lgb.early_stopping(spec.booster.early_stopping_rounds, verbose=False)
    booster = lgb.train(params, train, spec.booster.n_estimators, valid_sets=[valid],
                        callbacks=[stop])  # fmt: skip
    fitted = HazardModel(booster, names, months, log_prior)
    return recalibrate(fitted, Xv, yv, wv)


def recalibrate(model: HazardModel, X: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> HazardModel:
    """Shift each class's intercept so that the weighted mean hazards on the validation slice
    (later than the fit slice) match the observed ones: the survival model's counterpart of the
    binary model's calibrator fitted on the same slice."""
    observed = np.bincount(y, weights=w, minlength=len(model.log_prior)) + 1.0
    observed /= observed.sum()
    log_prior = model.log_prior.copy()
    for _ in range(5):  # fixed-point steps; each multiplies the mean by observed / predicted
        p = HazardModel(model.booster, model.features, model.months, log_prior)
        predicted = np.average(p.period_probabilities(X), axis=0, weights=w)
        log_prior = log_prior + np.log(observed / predicted)
    return HazardModel(model.booster, model.features, model.months, log_prior)


def act_by_days(out: SurvivalOutputs, month_days: float, lead_days: int) -> np.ndarray:
    """Days after t by which to act: ``lead_days`` before the month in which the most likely
    cause's incidence first reaches half of its K-month value (the cause's likely timing), never
    before t itself (0: act now)."""
    cause = out.incidence[:, -1, :].argmax(axis=1)
    curve = out.incidence[np.arange(len(cause)), :, cause]  # (n, K)
    month = np.argmax(curve >= 0.5 * curve[:, -1:], axis=1)  # 0-based: churn in month + 1
    return np.maximum(np.round(month * month_days) - lead_days, 0).astype(np.int64)
