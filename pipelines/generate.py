"""Stage `generate`: write the built-in synthetic world (all five contract tables)."""

from __future__ import annotations

import logging
from pathlib import Path

from features.synthetic import generate_world
from pipelines.config import Config
from pipelines.io import save_tables

log = logging.getLogger(__name__)


def run(cfg: Config) -> Path:
    tables = generate_world(cfg.generate)
    for name, df in tables.present().items():
        log.info("%s: %d rows", name, len(df))
    return save_tables(tables.present(), cfg.path(cfg.paths.world))
