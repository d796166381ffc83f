"""The path past one machine (docs/models.md, "Past one machine"): LightGBM's Dask integration
fits the churn model data-parallel over a feature table partitioned by customer, and what it
returns is a LightGBM booster like the train stage's, so tierwise's ChurnModel wraps it,
calibrates it, scores it and explains it (exact TreeSHAP sums to the raw score) unchanged.

tierwise does not train with Dask itself; this checks that the documented path holds with the
project's own booster settings and model classes, on a local cluster of two worker processes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from features.contract import CUSTOMER_ID
from features.labels import CHURNED
from models.training.boosters import ChurnModel
from models.training.estimators import make_calibrator, make_churn_classifier
from models.training.split import churn_rows

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
lgb_dask = pytest.importorskip("lightgbm.dask")


def test_a_dask_trained_churn_booster_scores_and_explains_like_the_stages(
    small_table, train_spec, model_features, trained
):
    split = trained.models.split
    fit, validation, test = (
        churn_rows(split.rows(small_table, part)) for part in ("fit", "validation", "test")
    )
    names = list(model_features)
    # the train stage's booster settings, with the tree count its early stopping chose
    params = replace(train_spec.churn, n_estimators=trained.summary.churn.trees, num_threads=1)
    kwargs = make_churn_classifier(params, train_spec.seed).get_params()
    kwargs.pop("n_jobs")  # Dask gives each worker its threads
    # partitioned by customer: each customer's snapshots on one worker
    fit = fit.sort_values([CUSTOMER_ID], kind="stable").reset_index(drop=True)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        X = dd.from_pandas(fit[names], npartitions=2)
        y = dd.from_pandas(fit[CHURNED].astype(int), npartitions=2)
        model = lgb_dask.DaskLGBMClassifier(client=client, **kwargs).fit(X, y)
        assert X.npartitions == 2 and len(model.client_.scheduler_info()["workers"]) == 2
    booster = model.to_local().booster_
    assert booster.current_iteration() == trained.summary.churn.trees

    raw = booster.predict(validation[names], raw_score=True)
    calibrator = make_calibrator("platt").fit(raw, validation[CHURNED].to_numpy(int))
    churn = ChurnModel(booster, calibrator, names, model_features)
    y_test = test[CHURNED].to_numpy(int)
    dask_auc = roc_auc_score(y_test, churn.probability(test))
    stage_auc = roc_auc_score(y_test, trained.models.churn.probability(test))
    print(f"test ROC AUC: dask {dask_auc:.4f}, train stage {stage_auc:.4f}")
    assert dask_auc > 0.7 and abs(dask_auc - stage_auc) < 0.03, (dask_auc, stage_auc)
    contributions = booster.predict(churn.matrix(test), pred_contrib=True)
    np.testing.assert_allclose(contributions.sum(axis=1), churn.raw_score(test), atol=1e-9)
