"""`tierwise monitor`: does the registered churn model still fit the book as of one date?

validate the contract directory -> features as of DATE for every customer known then (slices,
as `tierwise score` builds them) -> the churn model through MLflow pyfunc -> counts on the
reference profile's bins (the one stored with the model, or one built from the book at
--reference DATE) -> drift, data quality, CBPE estimates -> the realised backtest: the earlier
month-ends whose label window (t, t+H] has ended by DATE, scored and compared with their labels
-> the verdict. Writes the JSON (and --html), logs one MLflow run tagged with the verdict.
Reads nothing dated after DATE: features at t <= DATE, labels over (t, t+H] with t+H <= DATE.
docs/monitoring.md explains every number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.build import iter_feature_table
from features.contract import AS_OF, Tables, data_end, data_start
from features.registry import STATE_COLUMNS, feature_groups
from features.snapshots import count_known, month_ends
from models.monitoring.book import BookMonitor
from models.monitoring.profile import ProfileError
from models.monitoring.quality import table_profile
from models.monitoring.reference import performance, reference_profile
from models.monitoring.report import RETRAIN, summary_line
from models.serving import registry
from pipelines.config import Config
from pipelines.io import OutputExistsError, read_contract, save_json, save_text

log = logging.getLogger(__name__)

CHAMPION_URI = f"models:/{registry.MODEL_NAMES['churn']}@{registry.CHAMPION}"
EXPLAIN_NONE = {"explain": "none"}  # monitoring needs probabilities and bands, not reasons


class MonitorError(ValueError):
    """A monitor request that cannot be served (no profile, nothing known at DATE, bad dates)."""


@dataclass(frozen=True)
class MonitorRequest:
    data_dir: Path
    as_of: pd.Timestamp
    out: Path
    reference: pd.Timestamp | None = None
    model: str = CHAMPION_URI
    html: Path | None = None
    overwrite: bool = False
    log_run: bool = True  # one MLflow run per monitor call, tagged with the verdict


def check_request(request: MonitorRequest) -> None:
    """Fail before any work: wrong suffixes, outputs that exist, a reference after DATE."""
    if request.out.suffix.lower() != ".json":
        raise MonitorError(f"--out {request.out}: the monitor writes a .json file")
    if request.html is not None and request.html.suffix.lower() not in (".html", ".htm"):
        raise MonitorError(f"--html {request.html}: expected an .html file")
    for path in (request.out, request.html):
        if path is not None and path.exists() and not request.overwrite:
            raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    if request.reference is not None and request.reference >= request.as_of:
        raise MonitorError(f"--reference {request.reference.date()} must be before --as-of")


def _scored_slices(cfg: Config, tables: Tables, dates, model, label_end=None):
    """(feature slice, churn output) of every customer known at ``dates``."""
    slices = iter_feature_table(
        tables,
        pd.DatetimeIndex(dates),
        cfg.defs,
        cfg.features,
        data_end=label_end,
        chunk_customers=cfg.features.chunk_customers,
    )
    for features in slices:  # fmt: skip
        if len(features):
            yield features, model.predict(features, params=EXPLAIN_NONE).reset_index(drop=True)


def _reference(cfg: Config, tables: Tables, request: MonitorRequest, loaded) -> dict:
    """The stored profile, or one of the book at --reference (its labels matured by DATE)."""
    if request.reference is None:
        profile = registry.model_profile(loaded)
        if profile is None:
            raise MonitorError(
                f"{loaded.pinned_uri} carries no reference profile (registered before "
                "monitoring): pass --reference DATE or register the model again"
            )
        return profile
    parts = list(_scored_slices(cfg, tables, [request.reference], loaded.model, request.as_of))
    rows = pd.concat([f for f, _ in parts], ignore_index=True)
    scores = pd.concat([s for _, s in parts], ignore_index=True)
    ref = {"kind": "book as of --reference", "start": str(request.reference.date()),
           "end": str(request.reference.date()), "snapshots": 1}  # fmt: skip
    return reference_profile(rows, scores, rows, feature_groups(cfg.features), STATE_COLUMNS,
                             tables, cfg.monitor, cfg.evaluate.bins, ref)  # fmt: skip


def backtest_dates(tables: Tables, as_of: pd.Timestamp, horizon_days: int, n: int):
    """The last ``n`` month-ends t with t + H <= as_of (labels matured), after the data starts."""
    last = as_of - pd.Timedelta(days=horizon_days)
    start = data_start(tables)
    if n == 0 or last <= start:
        return pd.DatetimeIndex([])
    return month_ends(start, last)[-n:]


def backtest(cfg: Config, tables: Tables, as_of: pd.Timestamp, model) -> list[dict]:
    """Realised next to estimated metrics for each matured month-end, oldest first."""
    from features.labels import CHURNED

    dates = backtest_dates(tables, as_of, cfg.labels.horizon_days, cfg.monitor.backtest_snapshots)
    if len(dates) == 0:
        return []
    parts = list(_scored_slices(cfg, tables, dates, model, label_end=as_of))
    rows = pd.concat([f[[AS_OF, CHURNED]] for f, _ in parts], ignore_index=True)
    scores = pd.concat([s for _, s in parts], ignore_index=True)
    out = []
    for date, index in rows.groupby(AS_OF).groups.items():
        perf = performance(scores.loc[index], rows.loc[index, CHURNED], cfg.monitor,
                           cfg.evaluate.bins)  # fmt: skip
        out.append({"as_of": str(pd.Timestamp(date).date())} | perf)
    return out


def monitor_book(cfg: Config, tables: Tables, as_of: pd.Timestamp, model, profile) -> BookMonitor:
    book = BookMonitor(profile)
    for features, scores in _scored_slices(cfg, tables, [as_of], model):
        book.add(features, scores)
    return book


def _log_run(cfg: Config, request: MonitorRequest, loaded, report: dict) -> None:
    est = report["estimated"]
    metrics = {"drift_share": report["drift_share"], "rows": report["rows"],
               "estimated_roc_auc": est["roc_auc"]["value"], "estimated_pr_auc":
               est["pr_auc"]["value"], "estimated_ece": est["ece"]["value"],
               "score_psi": report["score"]["psi"]}  # fmt: skip
    record = registry.RunRecord(
        experiment=f"{cfg.mlflow.experiment}-monitor",
        params={
            "as_of": report["as_of"],
            "model": loaded.pinned_uri,
            "reference": str(request.reference.date()) if request.reference else "profile",
            "monitor": vars(cfg.monitor),
        },  # fmt: skip
        tags={"verdict": report["verdict"], "model": loaded.pinned_uri, "as_of": report["as_of"]},
        metrics={k: v for k, v in metrics.items() if v is not None},
        dicts={"monitor.json": report},
    )
    report["mlflow_run_id"] = registry.log_run(cfg.root, record, []).run_id


def run(cfg: Config, request: MonitorRequest) -> dict:
    """Monitor ``request.data_dir`` as of ``request.as_of``; the report (also written)."""
    check_request(request)
    loaded = registry.load_model(cfg.root, request.model)  # a wrong URI fails before the data
    tables, _ = read_contract(request.data_dir, end=cfg.data.end)
    if count_known(tables, request.as_of)[0] == 0:
        raise MonitorError(f"no customer is known at {request.as_of.date()} in {request.data_dir}")
    if request.as_of > data_end(tables):
        log.warning("--as-of %s is after the data's last date %s", request.as_of.date(),
                    data_end(tables).date())  # fmt: skip
    try:
        profile = _reference(cfg, tables, request, loaded)
        book = monitor_book(cfg, tables, request.as_of, loaded.model, profile)
    except ProfileError as err:
        raise MonitorError(str(err)) from err
    realised = backtest(cfg, tables, request.as_of, loaded.model)
    now = table_profile(tables, request.as_of, cfg.monitor.window_days)
    report = book.report(now, cfg.monitor, request.as_of, cfg.evaluate.bins, realised)
    report["model"] = loaded.pinned_uri
    if request.log_run:
        _log_run(cfg, request, loaded, report)
    save_json(report, request.out)
    if request.html is not None:
        from pipelines.reporting.monitor_page import monitor_page

        save_text(monitor_page(report), request.html)
    log.info("%s (%d reasons) -> %s", summary_line(report), len(report["reasons"]), request.out)
    return report


def _scores(cfg: Config, churn_model, rows: pd.DataFrame) -> pd.DataFrame:
    """The registered churn model's probability and risk band on feature rows, in process."""
    from models.serving.pyfunc import ChurnOutputs, RegisteredChurnModel
    from models.strategies.catalog import load_catalog

    outputs = ChurnOutputs.from_spec(cfg.score, load_catalog(), cfg.explain.k)
    scored = RegisteredChurnModel(churn_model, outputs).predict_frame(rows, explain="none")
    return scored.reset_index(drop=True)


def run_stage(cfg: Config) -> dict:
    """The DVC stage `monitor`: each test snapshot (and all of them) against the training
    window's reference, the one the evaluate stage stores with the model; DVC metrics."""
    from features.labels import CHURNED
    from pipelines.io import load_frame, load_pickle

    table = load_frame(cfg.path(cfg.paths.features))
    fitted = load_pickle(cfg.path(cfg.paths.models), "train")
    validation = fitted.split.rows(table, "validation").reset_index(drop=True)
    reference = {"kind": "training window, validation snapshots",
                 "start": str(fitted.split.validation.min().date()),
                 "end": str(fitted.split.validation.max().date()),
                 "snapshots": len(fitted.split.validation)}  # fmt: skip
    profile = reference_profile(
        validation, _scores(cfg, fitted.churn, validation), validation,
        feature_groups(cfg.features), STATE_COLUMNS, None, cfg.monitor, cfg.evaluate.bins,
        reference,
    )  # fmt: skip
    test = fitted.split.rows(table, "test").reset_index(drop=True)
    scores = _scores(cfg, fitted.churn, test)
    by_snapshot, pooled = {}, BookMonitor(profile)
    for date, index in test.groupby(AS_OF).groups.items():
        book = BookMonitor(profile)
        book.add(test.loc[index].reset_index(drop=True), scores.loc[index].reset_index(drop=True))
        pooled.add(test.loc[index].reset_index(drop=True), scores.loc[index].reset_index(drop=True))
        real = performance(scores.loc[index], test.loc[index, CHURNED], cfg.monitor,
                           cfg.evaluate.bins)["realised"]  # fmt: skip
        by_snapshot[str(pd.Timestamp(date).date())] = _stage_metrics(
            book.report({}, cfg.monitor, date, cfg.evaluate.bins)) | {
            "realised_roc_auc": (real or {}).get("roc_auc")}  # fmt: skip
    last = max(by_snapshot)
    pooled_report = pooled.report({}, cfg.monitor, pd.Timestamp(last), cfg.evaluate.bins)
    metrics = {"test": _stage_metrics(pooled_report), "by_snapshot": by_snapshot}
    save_json({"test": metrics["test"]}, cfg.path(cfg.paths.monitor))  # headline: DVC metrics
    save_json(by_snapshot, cfg.path(cfg.paths.monitor_by_snapshot))
    log.info("monitor: test snapshots %s", summary_line(pooled_report))
    return metrics


def _stage_metrics(report: dict) -> dict:
    est = report["estimated"]
    return {"verdict": report["verdict"], "drift_share": report["drift_share"],
            "drifted_features": sum(f["drifted"] for f in report["features"]),
            "score_psi": report["score"]["psi"], "estimated_roc_auc": est["roc_auc"]["value"],
            "estimated_roc_auc_drop": est["roc_auc_drop"]}  # fmt: skip


def is_retrain(report: dict) -> bool:
    return report["verdict"] == RETRAIN


__all__ = ["MonitorError", "MonitorRequest", "backtest_dates", "is_retrain", "run", "run_stage"]
