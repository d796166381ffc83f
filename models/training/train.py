"""Training: the churn and tier models with their baselines, on an out-of-time split.

``train_models`` is the one entry point (the `train` stage calls it): split the feature table,
fit every model, and predict the test rows. Pure: DataFrames and typed settings in, fitted
objects and new DataFrames out.

- churn: LightGBM (fit slice) with early stopping on the validation slice, then a calibrator
  (isotonic or Platt, ``train.calibration``; "auto" picks the lower customer-grouped
  cross-validated Brier score on the validation slice) fitted on the validation slice;
- baselines: logistic regression on all training snapshots (fit + validation), and the BG/NBD
  score 1 - btyd_p_alive, Platt-scaled on the validation slice (monotone: its ranking is kept);
- tier: LightGBM multiclass (early stopping on the validation slice picks the number of trees;
  with ``train.tier_refit``, the model kept is refitted with that many trees on fit +
  validation) against the empirical Markov matrix by current tier from all training snapshots.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import CHURNED, LABEL_AVAILABLE, NEXT_TIER
from features.registry import LIFECYCLE_STATE, LOYALTY_LEVEL, TIER
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.spec import BoosterParams, SplitSpec, TrainSpec
from models.training.boosters import ChurnModel, TierModel
from models.training.estimators import (
    FITTED_METHODS,
    MarkovBaseline,
    ScoreCalibrator,
    make_calibrator,
    make_churn_classifier,
    make_logistic_baseline,
    make_markov_baseline,
    make_tier_classifier,
    tier_codes,
)
from models.training.fallback import markov_tier_model, tier_fallback_reason
from models.training.sampling import sample_customers, sample_share
from models.training.split import Split, churn_rows, split_snapshots, tier_rows
from models.training.summary import (
    ChurnInfo,
    FitInfo,
    TestRows,
    TierInfo,
    TrainSeconds,
    TrainSummary,
)

log = logging.getLogger(__name__)

BTYD_P_ALIVE = "btyd_p_alive"
LOGISTIC_PROBABILITY = "logistic_churn_probability"
BTYD_PROBABILITY = "btyd_churn_probability"
MARKOV_MODEL = "markov_baseline"  # TierInfo.model when the tier model fell back (fallback.py)
MARKOV_COLUMNS = tuple(f"markov_{c}" for c in NEXT_TIER_COLUMNS)
_EVAL_XY = "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters
ID_COLUMNS = (CUSTOMER_ID, AS_OF, TIER, LIFECYCLE_STATE, LOYALTY_LEVEL, CHURNED, NEXT_TIER)


@dataclass(frozen=True)
class FittedModels:
    churn: ChurnModel
    tier: TierModel
    logistic: Pipeline
    btyd: ScoreCalibrator
    markov: MarkovBaseline
    split: Split
    info: FitInfo  # calibration choice, trees, rows, seconds


@dataclass(frozen=True)
class TrainResult:
    models: FittedModels
    predictions: pd.DataFrame  # every labelled test row (see predict_test)
    summary: TrainSummary  # reports/train.json


class Fingerprint:
    """SHA-256 of a table's content fed batch by batch (rows in order): the same digest as
    ``data_fingerprint`` of the whole table, with one batch in memory at a time."""

    def __init__(self, columns: Sequence[str]) -> None:
        self._digest = hashlib.sha256("\x1f".join(map(str, columns)).encode())

    def update(self, batch: pd.DataFrame) -> None:
        self._digest.update(pd.util.hash_pandas_object(batch, index=False).to_numpy().tobytes())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def data_fingerprint(table: pd.DataFrame) -> str:
    """SHA-256 of the table's content (values, column names and order; not the file bytes)."""
    fingerprint = Fingerprint(table.columns)
    fingerprint.update(table)
    return fingerprint.hexdigest()


def btyd_score(frame: pd.DataFrame) -> np.ndarray:
    """BG/NBD churn score as log-odds of 1 - p_alive (a missing p_alive counts as 0.5)."""
    dead = 1.0 - frame[BTYD_P_ALIVE].fillna(0.5).to_numpy(dtype=float)
    return logit(np.clip(dead, 1e-6, 1 - 1e-6))


def _fit_booster(
    model: lgb.LGBMClassifier, fit: tuple, validation: tuple, params: BoosterParams
) -> lgb.LGBMClassifier:
    stop = lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)
    if _EVAL_XY:  # LightGBM >= 4.7 deprecates eval_set in favour of eval_X / eval_y
        return model.fit(*fit, eval_X=(validation[0],), eval_y=(validation[1],), callbacks=[stop])
    return model.fit(*fit, eval_set=[validation], callbacks=[stop])


def choose_calibration(
    score: np.ndarray, y: np.ndarray, customers: np.ndarray, spec: TrainSpec
) -> tuple[str, dict[str, float]]:
    """The calibration method, and each candidate's out-of-fold Brier score on the validation
    slice (folds grouped by customer; ties go to Platt, the simpler map)."""
    if spec.calibration != "auto":
        return spec.calibration, {}
    folds = GroupKFold(n_splits=min(spec.calibration_folds, len(np.unique(customers))))
    briers = {}
    for method in FITTED_METHODS:
        oof = np.empty(len(y))
        for train_idx, held_idx in folds.split(score, y, customers):
            calibrator = make_calibrator(method).fit(score[train_idx], y[train_idx])
            oof[held_idx] = calibrator.predict(score[held_idx])
        briers[method] = float(brier_score_loss(y, oof))
    chosen = min(reversed(FITTED_METHODS), key=lambda m: briers[m])
    return chosen, briers


def fit_churn_model(
    fit: pd.DataFrame, validation: pd.DataFrame, features: Mapping[str, str], spec: TrainSpec
) -> tuple[ChurnModel, dict]:
    names = list(features)
    y_fit, y_val = fit[CHURNED].to_numpy(int), validation[CHURNED].to_numpy(int)
    model = make_churn_classifier(spec.churn, spec.seed)
    model = _fit_booster(model, (fit[names], y_fit), (validation[names], y_val), spec.churn)
    booster = model.booster_
    raw = booster.predict(validation[names], raw_score=True, num_iteration=booster.best_iteration)
    method, briers = choose_calibration(raw, y_val, validation[CUSTOMER_ID].to_numpy(), spec)
    calibrator = make_calibrator(method).fit(raw, y_val)
    info = {"trees": int(booster.best_iteration), "calibration": method, "calibration_cv": briers}
    return ChurnModel(booster, calibrator, names, features), info


def fit_tier_model(
    fit: pd.DataFrame, validation: pd.DataFrame, features: Mapping[str, str], spec: TrainSpec
) -> tuple[TierModel, dict]:
    names = list(features)
    y_fit, y_val = tier_codes(fit[NEXT_TIER]), tier_codes(validation[NEXT_TIER])
    if len(np.unique(y_fit)) < 3:
        raise ValueError("the tier model needs at least three next-tier classes in training")
    model = make_tier_classifier(spec.tier, spec.seed)
    model = _fit_booster(model, (fit[names], y_fit), (validation[names], y_val), spec.tier)
    trees = int(model.booster_.best_iteration) or model.booster_.current_iteration()
    if spec.tier_refit:  # early stopping chose the trees; the model kept learns every month too
        params = replace(spec.tier, n_estimators=trees)
        both = pd.concat([fit[names], validation[names]], ignore_index=True)
        model = make_tier_classifier(params, spec.seed).fit(both, np.concatenate([y_fit, y_val]))
    tier = TierModel(model.booster_, model.classes_, names, features)
    return tier, {"trees": trees}


def _timed(step, *args):
    start = time.perf_counter()
    result = step(*args)
    return result, round(time.perf_counter() - start, 2)


def fit_models(
    table: pd.DataFrame, split: Split, features: Mapping[str, str], spec: TrainSpec
) -> FittedModels:
    """Every model of one run, fitted on the split's fit and validation slices only."""
    names = list(features)
    churn = {p: churn_rows(split.rows(table, p)) for p in ("fit", "validation")}
    tier = {p: tier_rows(split.rows(table, p)) for p in ("fit", "validation")}
    churn_train, tier_train = pd.concat(churn.values()), pd.concat(tier.values())
    (churn_model, churn_info), t_churn = _timed(fit_churn_model, *churn.values(), features, spec)
    logistic = make_logistic_baseline(spec.logistic, spec.seed)
    logistic, t_logistic = _timed(
        logistic.fit, churn_train[names], churn_train[CHURNED].to_numpy(int)
    )
    btyd = make_calibrator("platt").fit(
        btyd_score(churn["validation"]), churn["validation"][CHURNED].to_numpy(int)
    )
    markov = make_markov_baseline(spec.markov.alpha).fit(tier_train[TIER], tier_train[NEXT_TIER])
    fallback = tier_fallback_reason(tier["fit"], tier_rows(table))
    if fallback:  # the data cannot train a tier model: its outputs come from the Markov baseline
        log.warning("tier model: %s; using the Markov baseline", fallback)
        (tier_model, tier_info), t_tier = (markov_tier_model(markov, features), {"trees": 0}), 0.0
    else:
        (tier_model, tier_info), t_tier = _timed(fit_tier_model, *tier.values(), features, spec)
    tier_info |= {"model": MARKOV_MODEL if fallback else "lightgbm", "fallback": fallback}
    info = FitInfo(
        churn=ChurnInfo(**churn_info, **{f"{p}_rows": len(churn[p]) for p in churn}),
        tier=TierInfo(**tier_info, **{f"{p}_rows": len(tier[p]) for p in tier}),
        seconds=TrainSeconds(churn=t_churn, logistic=t_logistic, tier=t_tier),
    )
    return FittedModels(churn_model, tier_model, logistic, btyd, markov, split, info)


def predict_test(models: FittedModels, table: pd.DataFrame) -> pd.DataFrame:
    """Every labelled test row: ids, states, labels, and each model's predictions.

    Churn probabilities are given for customers active at t (the churn model's population) and
    are NaN for the others; tier probabilities for every row.
    """
    rows = tier_rows(models.split.rows(table, "test"))
    active = rows[CHURNED].notna().to_numpy()
    churn_cols = (CHURN_PROBABILITY, LOGISTIC_PROBABILITY, BTYD_PROBABILITY)
    out = {name: np.full(len(rows), np.nan) for name in churn_cols}
    scored = rows[active]
    out[CHURN_PROBABILITY][active] = models.churn.probability(scored)
    out[LOGISTIC_PROBABILITY][active] = models.logistic.predict_proba(
        scored[models.churn.features]
    )[:, 1]
    out[BTYD_PROBABILITY][active] = models.btyd.predict(btyd_score(scored))
    tier = models.tier.probabilities(rows)
    markov = models.markov.predict_proba(rows[TIER])
    out |= {c: tier[:, i] for i, c in enumerate(NEXT_TIER_COLUMNS)}
    out |= {c: markov[:, i] for i, c in enumerate(MARKOV_COLUMNS)}
    ids = rows.loc[:, list(ID_COLUMNS)].reset_index(drop=True)
    return pd.concat([ids, pd.DataFrame(out)], axis=1)


def train_models(
    table: pd.DataFrame,
    split_spec: SplitSpec,
    spec: TrainSpec,
    horizon_days: int,
    features: Mapping[str, str],
) -> TrainResult:
    """Split ``table`` out of time, fit every model, predict the test rows."""
    missing = [name for name in features if name not in table.columns]
    if missing:
        raise KeyError(f"feature table lacks feature column(s): {', '.join(missing[:5])}")
    split = split_snapshots(table, split_spec, horizon_days)
    log.info("split: %s", split.describe())
    kept = training_customers(table, split, spec)
    training = table if kept is None else sampled_rows(table, split, kept)
    models = fit_models(training, split, features, spec)
    log.info("trained: %s", models.info)
    predictions = predict_test(models, table)
    return TrainResult(models, predictions, _summary(split, models, predictions, table))


def _summary(
    split: Split, models: FittedModels, predictions: pd.DataFrame, table: pd.DataFrame | str
) -> TrainSummary:
    """reports/train.json; ``table`` is the feature table or its fingerprint already taken."""
    return TrainSummary(
        split=split.summary(),
        data_fingerprint=table if isinstance(table, str) else data_fingerprint(table),
        test_rows=TestRows(churn=int(predictions[CHURNED].notna().sum()), tier=len(predictions)),
        churn=models.info.churn,
        tier=models.info.tier,
        seconds=models.info.seconds,
        warnings=train_warnings(models.info),
    )


# --- Bounded memory: sampled training customers, float32 rows read in batches ---------------

KEY_COLUMNS = (CUSTOMER_ID, AS_OF, TIER, LABEL_AVAILABLE, CHURNED)
TRAINING_COLUMNS = (*ID_COLUMNS, LABEL_AVAILABLE, BTYD_P_ALIVE)  # besides the features


def training_dates(split: Split) -> pd.DatetimeIndex:
    return split.fit.union(split.validation)


def training_customers(keys: pd.DataFrame, split: Split, spec: TrainSpec) -> np.ndarray | None:
    """The customers whose fit and validation rows are kept (``train.sample``), or None for all.

    ``keys`` needs KEY_COLUMNS only, so a large table can be sampled before its features are read.
    """
    rows = tier_rows(keys[keys[AS_OF].isin(training_dates(split))])
    share = sample_share(spec.sample, len(rows))
    if share >= 1.0:
        return None
    kept = sample_customers(rows, share, spec.seed)
    log.info(
        "sample: %d of %d customers (share %.3f)", len(kept), rows[CUSTOMER_ID].nunique(), share
    )
    return kept


def sampled_rows(table: pd.DataFrame, split: Split, kept: np.ndarray) -> pd.DataFrame:
    """The labelled fit and validation rows of the ``kept`` customers."""
    rows = tier_rows(table[table[AS_OF].isin(training_dates(split))])
    return rows[rows[CUSTOMER_ID].isin(kept)]


def feature_dtype(spec: TrainSpec, sampled: bool) -> type:
    """float32 (half the memory) when ``train.float32`` says so; "auto": for a sampled book only,
    so a book trained whole gets exactly the float64 models of earlier versions."""
    choice = spec.float32.lower()
    wanted = choice == "true" or (choice == "auto" and sampled)
    return np.float32 if wanted else np.float64


def float32_rows(
    batches: Iterable[pd.DataFrame],
    n_rows: int,
    features: Sequence[str],
    dtype: type = np.float32,
) -> pd.DataFrame:
    """Concatenate row batches into one frame whose features are a single block (float32 by
    default) filled batch by batch: no concatenation of frames, no float64 copy of the table
    when float32; the other columns keep their dtypes."""
    names = list(features)
    matrix = np.empty((n_rows, len(names)), dtype=dtype)
    others, start = [], 0
    for batch in batches:
        matrix[start : start + len(batch)] = batch[names].to_numpy(dtype=dtype)
        others.append(batch.drop(columns=names).reset_index(drop=True))
        start += len(batch)
    if start != n_rows:
        raise ValueError(f"read {start} training rows, expected {n_rows}")
    ids = pd.concat(others, ignore_index=True) if others else pd.DataFrame(index=range(0))
    return pd.concat([ids, pd.DataFrame(matrix, columns=names, copy=False)], axis=1)


def train_in_batches(
    keys: pd.DataFrame,
    read_training: Callable[[pd.DatetimeIndex, np.ndarray | None], Iterable[pd.DataFrame]],
    read_all: Callable[[], Iterable[pd.DataFrame]],
    columns: Sequence[str],
    split_spec: SplitSpec,
    spec: TrainSpec,
    horizon_days: int,
    features: Mapping[str, str],
) -> TrainResult:
    """``train_models`` for a table too large to hold: the split and the sample come from its
    KEY_COLUMNS (``keys``); ``read_training(dates, customers)`` yields the labelled rows of those
    snapshots (customers None: all) in batches, held as float32; ``read_all()`` yields the whole
    table (``columns``, in order) in batches, for the fingerprint and the test predictions.
    It fits the same models as ``train_models`` on the table with the features in the dtype
    ``feature_dtype`` chooses (float64 for an unsampled book under "auto": the same models)."""
    missing = [name for name in features if name not in columns]
    if missing:
        raise KeyError(f"feature table lacks feature column(s): {', '.join(missing[:5])}")
    split = split_snapshots(keys, split_spec, horizon_days)
    log.info("split: %s", split.describe())
    kept = training_customers(keys, split, spec)
    chosen = tier_rows(keys[keys[AS_OF].isin(training_dates(split))])
    n_rows = len(chosen) if kept is None else int(chosen[CUSTOMER_ID].isin(kept).sum())
    del chosen
    dtype = feature_dtype(spec, sampled=kept is not None)
    training = float32_rows(read_training(training_dates(split), kept), n_rows, features, dtype)
    models = fit_models(training, split, features, spec)
    del training
    log.info("trained: %s", models.info)
    fingerprint, parts = Fingerprint(columns), []
    for batch in read_all():
        fingerprint.update(batch)
        test = batch[batch[AS_OF].isin(split.test)]
        if len(test):  # in the dtype the models were fitted on, like the in-memory path
            features_in = list(features)
            test = test.assign(**{n: test[n].astype(dtype) for n in features_in})
            parts.append(predict_test(models, test))
    predictions = pd.concat(parts, ignore_index=True)
    return TrainResult(
        models, predictions, _summary(split, models, predictions, fingerprint.hexdigest())
    )


def train_warnings(info: FitInfo) -> tuple[str, ...]:
    """What a reader of reports/train.json, the MLflow run and the report must know."""
    if not info.tier.fallback:
        return ()
    return (f"tier model: {info.tier.fallback}; next-tier probabilities come from the Markov "
            "baseline (registered as the tier model)",)  # fmt: skip
