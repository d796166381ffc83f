"""tierwise-uplift as a registered model: in process, and as stored files (no pickle).

``RegisteredUpliftModel`` answers through ``uplift_frame`` both in process and from the stored
files (``uplift_code.py``, MLflow models from code), so the two agree by construction. Stored:
each arm's LightGBM model text (``arm_<name>.txt``: ``none`` and one per fitted strategy) and
``model.json`` (features, arms, strategies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from models.serving.artifacts import SPEC, spec_document
from models.uplift.learner import NONE, UpliftTLearner

P_NONE = "p_none"  # churn probability untreated
UPLIFT_PREFIX = "uplift_"  # + strategy id: churn prevented by the strategy
TRAIN_LAST_CAMPAIGN = "train_last_campaign"  # version tag: the last campaign date it was fit on


def arm_artifact(arm: str) -> str:
    return f"arm_{arm}"


def uplift_frame(frame: pd.DataFrame, boosters: dict[str, lgb.Booster], spec: dict) -> pd.DataFrame:
    """customer_id, as_of, p_none and uplift_<strategy> (NaN: the arm was not fitted)."""
    X = frame[list(spec["features"])].astype("float64")
    p_none = boosters[NONE].predict(X)
    out = {P_NONE: p_none}
    for s in spec["strategies"]:
        out[UPLIFT_PREFIX + s] = p_none - boosters[s].predict(X) if s in boosters else np.nan
    ids = frame.loc[:, [CUSTOMER_ID, AS_OF]].reset_index(drop=True)
    return pd.concat([ids, pd.DataFrame(out)], axis=1)


@dataclass(frozen=True)
class RegisteredUpliftModel:
    learner: UpliftTLearner

    @property
    def features(self) -> list[str]:
        return self.learner.features_

    def input_columns(self) -> list[str]:
        return [CUSTOMER_ID, AS_OF, *self.features]

    def boosters(self) -> dict[str, lgb.Booster]:
        return {arm: m.booster_ for arm, m in self.learner.models_.items()}

    def spec(self) -> dict:
        body = {"features": self.features, "strategies": list(self.learner.strategies),
                "arms": list(self.learner.models_)}  # fmt: skip
        return spec_document("uplift", body, None)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return uplift_frame(frame, self.boosters(), self.spec())

    def predict_params(self) -> dict[str, str]:
        return {}

    def write_artifacts(self, folder: Path) -> dict[str, str]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {SPEC: folder / "model.json"}
        paths[SPEC].write_text(json.dumps(self.spec(), allow_nan=False, indent=1), "utf-8")
        for arm, booster in self.boosters().items():
            paths[arm_artifact(arm)] = folder / f"{arm_artifact(arm)}.txt"
            paths[arm_artifact(arm)].write_text(booster.model_to_string(), encoding="utf-8")
        return {name: str(path) for name, path in paths.items()}
