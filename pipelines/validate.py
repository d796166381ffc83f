"""Stage `validate`: check a contract directory, write typed tables and a validation report.

A hard violation raises ``ContractError`` before anything is written; soft problems land in the
report (a DVC output) as warnings. ``run_dir`` checks any directory (`tierwise validate --data
DIR [--report FILE]`) and writes only the report, when asked for one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from features.contract import Tables
from features.observation import observation_report, observation_start
from models.strategies.catalog import load_catalog
from pipelines.config import Config
from pipelines.io import read_contract, save_json, save_tables

log = logging.getLogger(__name__)


def run(cfg: Config) -> Tables:
    tables, report = read_contract(
        cfg.data_dir,
        end=cfg.data.end,
        cutoff=cfg.data.future_cutoff(),
        strategy_ids=load_catalog().ids,
    )
    start = observation_start(tables, cfg.data.start)
    report = {**report, "observation": observation_report(tables, start, cfg.data.start is None)}
    save_tables(tables.present(), cfg.path(cfg.paths.validated))
    save_json(report, cfg.path(cfg.paths.validation_report))
    return tables


def run_dir(cfg: Config, data_dir: Path, report_path: Path | None = None) -> dict:
    """Validate ``data_dir`` with params' rules; the report, also written to ``report_path``."""
    _, report = read_contract(
        data_dir, end=cfg.data.end, cutoff=cfg.data.future_cutoff(), strategy_ids=load_catalog().ids
    )
    if report_path is not None:
        save_json(report, report_path)
    rows = ", ".join(f"{name} {t['rows_out']:,}" for name, t in report["tables"].items())
    log.info(
        "%s follows the contract: %s rows; %d warnings; data end %s",
        data_dir, rows, report["n_warnings"], report["data_end"],
    )  # fmt: skip
    return report
