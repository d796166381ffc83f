"""The evaluation's errors, importable without its metrics (scikit-learn, SciPy): the CLI
catches them in every command, including those that never evaluate."""

from __future__ import annotations


class ChampionError(RuntimeError):
    """The current champion cannot be loaded or cannot score the test set."""


__all__ = ["ChampionError"]
