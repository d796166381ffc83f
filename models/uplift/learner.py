"""A T-learner for several strategies with one shared control arm, on LightGBM.

Grain: one row per campaign decision (customer_id, as_of = the campaign's date), its features
read at as_of, its strategy, its arm and the churn label over (as_of, as_of + H].

Because the campaign draws the strategy and the arm independently (docs/synthetic-world.md,
"Campaigns"; a real programme must do the same for this to hold), every control row is a valid
control for every strategy: one model ``p(churn | x, no treatment)`` learns from all controls,
and one model ``p(churn | x, strategy s)`` per strategy from the rows treated with s. The uplift
of s is their difference, the churn s prevents: ``p_none - p_s``. LightGBM handles the missing
values the feature table carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

NONE = "none"  # the no-treatment arm's column in predict_churn


def make_arm_model(params: Mapping[str, Any], seed: int) -> lgb.LGBMClassifier:
    """One arm's unfitted churn classifier (small trees: an arm has a few thousand rows)."""
    return lgb.LGBMClassifier(**params, random_state=seed, verbose=-1)


class UpliftFitError(ValueError):
    """The campaign history cannot fit the T-learner: its control arm has too few rows, or only
    one outcome. A property of the data (a short or small campaign history), not a bug."""


@dataclass
class UpliftTLearner:
    """``fit(X, strategy, treated, churned)`` then ``predict_churn`` / ``predict_uplift``."""

    params: Mapping[str, Any]
    strategies: Sequence[str]
    seed: int = 0
    min_rows: int = 30  # an arm with fewer rows (or one outcome only) is not fitted
    models_: dict[str, Any] = field(default_factory=dict, init=False)
    features_: list[str] = field(default_factory=list, init=False)

    def fit(
        self, X: pd.DataFrame, strategy: np.ndarray, treated: np.ndarray, churned: np.ndarray
    ) -> UpliftTLearner:
        strategy, treated = np.asarray(strategy), np.asarray(treated, bool)
        y = np.asarray(churned, float)
        self.features_ = list(X.columns)
        arms = {NONE: ~treated} | {s: treated & (strategy == s) for s in self.strategies}
        self.models_ = {}
        for name, rows in arms.items():
            if rows.sum() < self.min_rows or len(np.unique(y[rows])) < 2:
                continue
            self.models_[name] = make_arm_model(self.params, self.seed).fit(X[rows], y[rows])
        if NONE not in self.models_:
            control = ~treated
            raise UpliftFitError(
                f"the control arm has {int(control.sum())} rows ({int(y[control].sum())} "
                f"churned): at least {self.min_rows} with both outcomes are needed to fit it "
                "(uplift.min_arm_rows)"
            )
        return self

    @property
    def fitted_strategies(self) -> list[str]:
        return [s for s in self.strategies if s in self.models_]

    def predict_churn(self, X: pd.DataFrame) -> pd.DataFrame:
        """Churn probability under no treatment (``none``) and under each fitted strategy."""
        X = X[self.features_]
        return pd.DataFrame(
            {name: m.predict_proba(X)[:, 1] for name, m in self.models_.items()}, index=X.index
        )

    def predict_uplift(self, X: pd.DataFrame) -> pd.DataFrame:
        """Churn prevented by each fitted strategy: p_none - p_strategy (NaN: not fitted)."""
        churn = self.predict_churn(X)
        return pd.DataFrame(
            {s: churn[NONE] - churn[s] if s in churn else np.nan for s in self.strategies},
            index=X.index,
        )
