"""`tierwise plan --data DIR --as-of DATE --budget AMOUNT --out FILE`: the budgeted action plan.

Reads and validates a contract directory that holds a ``campaigns`` table (without one there is
nothing to learn what works from: exit 2, saying so). Everything is read as of DATE, point in
time: the uplift T-learner (models/uplift) is fitted on the campaigns whose churn label is known
by DATE (decided on or before DATE - H), with the features of each campaign's day; the book is
every customer active on DATE, with the features of DATE. Each gets the strategy with the best
expected saved value (saved CLV minus cost, on the survival champion's curve when it gives a
point-in-time one, else the geometric CLV: models/serving/value_basis.py) if positive, and the
plan takes customers greedily by value per cost while the total cost fits AMOUNT
(models/uplift/plan.py). One row per active customer, written atomically. The registered
champion (the default model) must not have learned from outcomes after DATE.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from features.build import build_feature_table
from features.labels import ACTIVE
from features.observation import observation_start
from features.registry import feature_names
from models.serving import registry
from models.serving.task import Task
from models.serving.uplift import UPLIFT_PREFIX
from models.serving.value_basis import survival_basis
from models.strategies.catalog import load_catalog
from models.uplift.data import IS_TREATED, build_uplift_rows, labelled
from models.uplift.learner import UpliftFitError
from models.uplift.plan import ACTION, NO_ACTION, ValueBasis, with_strategy_text
from models.uplift.planning import build_plan, plan_from_predictions
from pipelines.config import Config
from pipelines.io import BadRequestError, check_output, read_contract, save_frame

log = logging.getLogger(__name__)


CHAMPION_URI = f"models:/{registry.MODEL_NAMES['uplift']}@{registry.CHAMPION}"
FIT = "fit"  # --model fit: fit the T-learner on the campaigns known at --as-of instead


def run_plan(
    cfg: Config,
    data_dir: Path,
    as_of: pd.Timestamp,
    budget: float,
    out: Path,
    overwrite: bool,
    model: str = CHAMPION_URI,
    ignore_task: bool = False,
) -> pd.DataFrame:
    check_output(out, overwrite)
    if budget < 0:
        raise BadRequestError(f"--budget {budget}: a budget cannot be negative")
    loaded = None
    if model != FIT:  # the model loads before the data is read: a wrong URI fails early
        loaded = registry.load_model(cfg.root, model)
        registry.check_tasks((loaded,), Task.of(cfg.defs), ignore_task)
        _check_date(loaded, as_of)
    catalog = load_catalog()
    ids = list(catalog.ids)
    tables, _ = read_contract(data_dir, end=cfg.data.end, strategy_ids=ids)
    if tables.campaigns is None:
        raise BadRequestError(
            f"{data_dir} has no campaigns table: uplift learns what a strategy does from "
            "randomised campaigns (docs/data-contract.md, campaigns); without them there is no plan"
        )
    book = _book(cfg, tables, as_of)
    basis = survival_basis(cfg.root, book, cfg.defs, cfg.survival.events, as_of).basis
    if loaded is None:
        history = _history(cfg, tables, as_of)
        try:
            plan, _ = build_plan(history, book, feature_names(cfg.features), ids, cfg.uplift,
                                 cfg.kpis, cfg.labels.horizon_days, budget, basis)  # fmt: skip
        except UpliftFitError as err:
            raise BadRequestError(
                f"{len(history)} campaign rows known at {as_of:%Y-%m-%d} cannot fit the uplift "
                f"model: {err}"
            ) from err
    else:
        plan = _served_plan(cfg, loaded, tables, book, as_of, budget, basis)
    plan = with_strategy_text(plan, catalog)
    save_frame(plan, out, overwrite=overwrite)
    chosen = plan[plan[ACTION] != NO_ACTION]
    log.info("plan for %s: %d of %d active customers, cost %.0f of %.0f, value basis %s (%s)",
             f"{as_of:%Y-%m-%d}", len(chosen), len(plan), chosen["cost"].sum(), budget,
             basis.name, basis.reason)  # fmt: skip
    return plan


def _check_date(loaded: registry.LoadedModel, as_of: pd.Timestamp) -> None:
    """A served model must not have learned from outcomes after DATE (point in time): exit 2
    naming the version, its training end (tag train_data_end) and DATE. A model that records no
    training end (registered before the tag, or outside the registry) is served with a warning."""
    where = f"{loaded.name} version {loaded.version}" if loaded.version else loaded.uri
    if loaded.train_end is None:
        log.warning("%s records no training end: --as-of %s is not checked against it", where,
                    f"{as_of:%Y-%m-%d}")  # fmt: skip
        return
    if as_of < loaded.train_end:
        raise BadRequestError(
            f"{where} learned from campaign outcomes up to {loaded.train_end:%Y-%m-%d} "
            f"(train_data_end), after --as-of {as_of:%Y-%m-%d}: a plan at that date would use "
            "what the model learned later. Use --model fit (fits on the campaigns known at "
            "--as-of) or a later --as-of"
        )


def _history(cfg: Config, tables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Campaign rows decided by ``as_of`` whose label is known at ``as_of``, with features."""
    campaigns = tables.campaigns[tables.campaigns["date"] <= as_of]
    dates = pd.DatetimeIndex(sorted(campaigns["date"].unique()))
    if dates.empty:
        raise BadRequestError(f"no campaign decided on or before {as_of:%Y-%m-%d}")
    start = observation_start(tables, cfg.data.start)
    table = build_feature_table(tables, dates, cfg.defs, cfg.features, data_end=as_of,
                                observed_from=start)  # fmt: skip
    rows = labelled(build_uplift_rows(campaigns, table))
    if rows.empty or rows[IS_TREATED].all():
        raise BadRequestError(
            f"no campaign with a control group and a known outcome by {as_of:%Y-%m-%d} "
            f"(a label needs {cfg.labels.horizon_days} days after the campaign)"
        )
    return rows


def _book(cfg: Config, tables, as_of: pd.Timestamp) -> pd.DataFrame:
    start = observation_start(tables, cfg.data.start)
    rows = build_feature_table(
        tables,
        pd.DatetimeIndex([as_of]),
        cfg.defs,
        cfg.features,
        data_end=as_of,
        observed_from=start,
    )  # fmt: skip (for `active`)
    active = rows[rows[ACTIVE].fillna(False).astype(bool)].reset_index(drop=True)
    if active.empty:
        raise BadRequestError(f"no customer is active at {as_of:%Y-%m-%d} in the data")
    return active


def _served_plan(cfg: Config, loaded, tables, book: pd.DataFrame, as_of, budget: float,
                 basis: ValueBasis):  # fmt: skip
    """The plan from the registered uplift model's answers for the book (its pyfunc:
    ``p_none`` and ``uplift_<strategy>``); the costs from the campaigns decided by ``as_of``."""
    answer = loaded.model.predict(book).reset_index(drop=True)
    strategies = [c.removeprefix(UPLIFT_PREFIX) for c in answer.columns
                  if c.startswith(UPLIFT_PREFIX) and answer[c].notna().any()]  # fmt: skip
    if not strategies:
        raise BadRequestError(f"{loaded.uri} answers no strategy's uplift: nothing to plan")
    uplift = pd.DataFrame({s: answer[UPLIFT_PREFIX + s].to_numpy() for s in strategies})
    campaigns = tables.campaigns[tables.campaigns["date"] <= as_of]
    history = campaigns.assign(treated=campaigns["arm"] == "treated")
    if "cost" not in history:
        history = history.assign(cost=0.0)
    log.info("plan from %s version %s", loaded.name, loaded.version or "-")
    plan, _ = plan_from_predictions(uplift, answer["p_none"], book, history, cfg.kpis,
                                    cfg.labels.horizon_days, budget, basis)  # fmt: skip
    return plan
