"""Aalen–Johansen cumulative incidence by tier (lifelines): the survival model's baseline.

Non-parametric: one curve per (tier, cause) from the training rows' outcomes, the same for every
customer of a tier. Ties (whole months) are broken by lifelines' jitter, seeded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter

from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.registry import TIER
from features.spec import CAUSES
from models.survival.hazards import SurvivalOutputs


def _event_codes(rows: pd.DataFrame) -> np.ndarray:
    cause = pd.Categorical(rows[SURV_CAUSE], categories=CAUSES).codes + 1
    return np.where(rows[SURV_EVENT].to_numpy() == 1.0, cause, 0)


def _curve(months: np.ndarray, codes: np.ndarray, cause: int, K: int, seed: int) -> np.ndarray:
    if not (codes == cause).any():
        return np.zeros(K)
    fitter = AalenJohansenFitter(calculate_variance=False, seed=seed)
    with warnings.catch_warnings():  # the tied-times warning: ties are expected (whole months)
        warnings.simplefilter("ignore")
        fitter.fit(months, codes, event_of_interest=cause)
    cif = fitter.cumulative_density_.iloc[:, 0]
    at = np.searchsorted(cif.index.to_numpy(), np.arange(1, K + 1) + 0.5, side="right") - 1
    return np.where(at >= 0, cif.to_numpy()[np.maximum(at, 0)], 0.0)


@dataclass
class AalenJohansenByTier:
    """Per tier: incidence (K, causes); rows of an unseen tier get the whole book's curves."""

    months: int
    curves: dict[str, np.ndarray]

    @classmethod
    def fit(cls, rows: pd.DataFrame, months: int, seed: int) -> AalenJohansenByTier:
        curves = {}
        groups = [("*", rows), *rows.groupby(TIER, observed=True)]
        for tier, part in groups:
            t, codes = part[SURV_MONTHS].to_numpy(float), _event_codes(part)
            curves[str(tier)] = np.column_stack(
                [_curve(t, codes, c + 1, months, seed) for c in range(len(CAUSES))]
            )
        return cls(months, curves)

    def predict(self, frame: pd.DataFrame) -> SurvivalOutputs:
        tiers = frame[TIER].astype(str).to_numpy()
        incidence = np.stack([self.curves.get(t, self.curves["*"]) for t in tiers])
        all_cause = incidence.sum(axis=2)
        survival = np.clip(1.0 - all_cause, 0.0, 1.0)
        before = np.concatenate([np.ones((len(frame), 1)), survival[:, :-1]], axis=1)
        start = np.zeros((len(frame), 1, len(CAUSES)))
        step = np.diff(np.concatenate([start, incidence], axis=1), axis=1)
        hazards = np.divide(step, before[:, :, None], out=np.zeros_like(step),
                            where=before[:, :, None] > 0)  # fmt: skip
        return SurvivalOutputs(hazards, survival, incidence)
