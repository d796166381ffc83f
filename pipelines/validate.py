"""Stage `validate`: check a contract directory, write typed tables and a validation report.

A hard violation raises ``ContractError`` before anything is written; soft problems land in the
report (a DVC output) as warnings.
"""

from __future__ import annotations

from features.contract import Tables
from features.observation import observation_report, observation_start
from pipelines.config import Config
from pipelines.io import read_contract, save_json, save_tables


def run(cfg: Config) -> Tables:
    tables, report = read_contract(cfg.data_dir, end=cfg.data.end)
    start = observation_start(tables, cfg.data.start)
    report = {**report, "observation": observation_report(tables, start, cfg.data.start is None)}
    save_tables(tables.present(), cfg.path(cfg.paths.validated))
    save_json(report, cfg.path(cfg.paths.validation_report))
    return tables
