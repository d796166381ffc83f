"""tierwise-survival as a registered model: in process, and as stored files (no pickle).

``RegisteredSurvivalModel`` answers through ``survival_frame`` both in process and from the
stored files (``survival_code.py``, MLflow models from code), so the two agree by construction.
Stored: LightGBM's model text (``booster.txt``) and ``model.json`` (features, months, the
recalibrated intercepts, the act_by settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.spec import CAUSES
from models.explain.causes import cause_reasons
from models.serving.artifacts import spec_document, write_artifacts
from models.strategies.catalog import load_catalog
from models.survival.hazards import HazardModel
from models.survival.strategies import cause_plans
from models.survival.train import CHURN_CAUSE, score_columns, survival_column


def survival_frame(
    frame: pd.DataFrame, booster: lgb.Booster, spec: dict, explain: str = "none"
) -> pd.DataFrame:
    """customer_id, as_of, the survival score columns of every input row, the play for its
    most likely cause and timing (``cause_strategy``, ``cause_strategy_source``,
    ``cause_timing``: models/survival/strategies.py) and its monthly all-cause survival curve
    (``survival_1m`` .. ``survival_<K>m``: the uplift plan's survival-weighted CLV). ``explain``
    (all | at_risk | none, as the churn model's predict param) adds the reasons for the most
    likely cause
    (``cause_reason_j``..., models/explain/causes.py) for every row or for the rows whose
    incidence at H reaches the stored at-risk threshold, when the version stores a reason spec."""
    model = HazardModel(booster, list(spec["features"]), int(spec["months"]),
                        np.asarray(spec["log_prior"], dtype=float))  # fmt: skip
    out = model.predict(frame)
    as_of = pd.to_datetime(frame[AS_OF]).reset_index(drop=True)
    scores = score_columns(out, as_of, float(spec["month_days"]), int(spec["act_lead_days"]))
    ids = frame.loc[:, [CUSTOMER_ID, AS_OF]].reset_index(drop=True)
    plans = cause_plans(load_catalog(), scores[CHURN_CAUSE], (scores["act_by"] <= as_of).to_numpy())
    curve = pd.DataFrame({survival_column(k): out.survival[:, k - 1]
                          for k in range(1, model.months + 1)})  # fmt: skip
    parts = [ids, scores, plans, curve]
    reasons = spec.get("reasons")
    if explain != "none" and reasons:
        parts.append(_reasons(frame.reset_index(drop=True), out, scores, booster, model, reasons,
                              explain))  # fmt: skip
    return pd.concat(parts, axis=1)


def _reasons(frame, out, scores, booster, model, spec: dict, explain: str) -> pd.DataFrame:
    """cause_reason_* for the rows ``explain`` selects (NaN / "" for the others)."""
    pick = np.ones(len(frame), dtype=bool)
    if explain in ("at_risk", "watch"):
        bar = spec["threshold"] if explain == "at_risk" else spec["watch_threshold"]
        pick = out.churn_by(int(spec["horizon_month"])) >= float(bar)
    index = pd.Categorical(scores[CHURN_CAUSE], categories=CAUSES).codes[pick]
    reasons = cause_reasons(booster, frame[pick], model.features, spec["groups"], model.months,
                            index, int(spec["k"]), currency=str(spec["currency"]))  # fmt: skip
    return reasons.reindex(frame.index)


@dataclass(frozen=True)
class RegisteredSurvivalModel:
    model: HazardModel
    month_days: float
    act_lead_days: int
    # reasons per cause on request (predict param explain): {"groups": {feature: group}, "k",
    # "threshold" / "watch_threshold" (on the incidence at "horizon_month"), "currency"}; None:
    # no reasons
    reasons: dict | None = None

    @property
    def features(self) -> list[str]:
        return self.model.features

    def input_columns(self) -> list[str]:
        return [CUSTOMER_ID, AS_OF, *self.model.features]

    def spec(self) -> dict:
        body = {
            "features": self.model.features,
            "months": self.model.months,
            "log_prior": [float(v) for v in self.model.log_prior],
            "best_iteration": int(self.model.booster.best_iteration),
            "month_days": self.month_days,
            "act_lead_days": self.act_lead_days,
            "reasons": self.reasons,
        }
        return spec_document("survival", body, None)

    def predict_frame(self, frame: pd.DataFrame, explain: str = "none") -> pd.DataFrame:
        return survival_frame(frame, self.model.booster, self.spec(), explain)

    def predict_params(self) -> dict[str, str]:
        return {"explain": "none"} if self.reasons else {}

    def write_artifacts(self, folder: Path) -> dict[str, str]:
        text = self.model.booster.model_to_string(num_iteration=self.model.booster.best_iteration)
        return write_artifacts(text, self.spec(), folder)
