"""Stage `validate`: check a contract directory, write typed tables and a validation report.

A hard violation raises ``ContractError`` before anything is written; soft problems land in the
report (a DVC output) as warnings.
"""

from __future__ import annotations

from features.contract import Tables
from features.validation import validate_tables
from pipelines.config import Config
from pipelines.io import load_raw_tables, save_json, save_tables


def validated_tables(cfg: Config, data_dir=None) -> tuple[Tables, dict]:
    """Read and validate a contract directory (default: params' data.dir); write nothing."""
    raw = load_raw_tables(data_dir or cfg.data_dir)
    tables, report = validate_tables(raw, end=cfg.data.end)
    return tables, report.to_dict()


def run(cfg: Config) -> Tables:
    tables, report = validated_tables(cfg)
    save_tables(tables.present(), cfg.path(cfg.paths.validated))
    save_json(report, cfg.path(cfg.paths.validation_report))
    return tables
