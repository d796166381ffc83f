"""Output column names shared by training, evaluation, explanations and serving (one place)."""

from __future__ import annotations

from features.spec import TIERS

CHURN_PROBABILITY = "churn_probability"
NEXT_TIER_COLUMNS = tuple(f"p_next_{tier}" for tier in TIERS)
RISK_BAND = "risk_band"
