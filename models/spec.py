"""Typed settings that models/ receives from the edge (pipelines/config.py builds them).

Every number here has its default and comes from params.yaml at run time; docs/models.md explains
each one. Kept free of heavy imports so that parsing params never loads LightGBM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CALIBRATION_METHODS = ("auto", "isotonic", "platt")


@dataclass(frozen=True)
class SplitSpec:
    """Out-of-time split: the last ``test_snapshots`` labelled snapshots are the test set."""

    test_snapshots: int = 6
    validation_snapshots: int = 3  # latest training snapshots: early stopping and calibration

    def __post_init__(self) -> None:
        if self.test_snapshots < 1 or self.validation_snapshots < 1:
            raise ValueError("test_snapshots and validation_snapshots must be at least 1")


@dataclass(frozen=True)
class BoosterParams:
    """LightGBM settings shared by the churn (binary) and tier (multiclass) models."""

    num_leaves: int = 31
    learning_rate: float = 0.05
    n_estimators: int = 2000  # upper bound; early stopping picks the number of trees
    early_stopping_rounds: int = 100
    min_child_samples: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_depth: int = -1
    num_threads: int = 2

    def __post_init__(self) -> None:
        if self.num_leaves < 2 or self.n_estimators < 1 or self.num_threads < 1:
            raise ValueError("num_leaves >= 2, n_estimators >= 1 and num_threads >= 1 required")
        if not 0 < self.learning_rate <= 1:
            raise ValueError("learning_rate must be in (0, 1]")
        if self.early_stopping_rounds < 1:
            raise ValueError("early_stopping_rounds must be at least 1")


@dataclass(frozen=True)
class LogisticParams:
    C: float = 1.0  # inverse L2 strength of the logistic-regression baseline (sklearn's C)
    max_iter: int = 2000


@dataclass(frozen=True)
class MarkovParams:
    alpha: float = 1.0  # additive smoothing of the transition counts

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError("markov alpha must be >= 0")


@dataclass(frozen=True)
class TrainSpec:
    seed: int = 42
    calibration: str = "auto"  # auto: isotonic or platt, whichever validates better
    calibration_folds: int = 5  # customer-grouped folds of the validation slice for "auto"
    churn: BoosterParams = field(default_factory=BoosterParams)
    tier: BoosterParams = field(default_factory=BoosterParams)
    logistic: LogisticParams = field(default_factory=LogisticParams)
    markov: MarkovParams = field(default_factory=MarkovParams)

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}")
        if self.calibration_folds < 2:
            raise ValueError("calibration_folds must be at least 2")


@dataclass(frozen=True)
class EvaluateSpec:
    bins: int = 10  # calibration bins (ECE, calibration curve)
    top_fraction: float = 0.10  # lift and capture rate in the top decile
    transition_threshold: float = 0.5  # P(upgrade) or P(downgrade) at or above: predicted move
    promotion_tolerance: float = (
        0.0  # how much worse a metric may be and still count as "not worse"
    )
    replace_broken_champion: bool = False  # a champion that cannot score: error, or replace it

    def __post_init__(self) -> None:
        if self.bins < 2 or not 0 < self.top_fraction <= 1:
            raise ValueError("bins >= 2 and top_fraction in (0, 1] required")
        if not 0 < self.transition_threshold < 1 or self.promotion_tolerance < 0:
            raise ValueError("transition_threshold in (0, 1) and promotion_tolerance >= 0")


@dataclass(frozen=True)
class KpiSpec:
    """Document 004's evaluation methods: retention, CLV, NPS, CSI."""

    clv_horizon_days: int = 1080  # CLV sums expected margin over this many days (whole horizons)
    discount_rate: float = 0.08  # yearly
    margin_share: float = 1.0  # share of interest income (loan_value_365) counted as margin
    survey_window_days: int = 365  # NPS and CSI read each customer's latest answer in this window

    def __post_init__(self) -> None:
        if self.clv_horizon_days <= 0 or self.survey_window_days <= 0:
            raise ValueError("clv_horizon_days and survey_window_days must be positive")
        if self.discount_rate < 0 or self.margin_share < 0:
            raise ValueError("discount_rate and margin_share must be >= 0")


@dataclass(frozen=True)
class ExplainSpec:
    """The explain stage (docs/explanations.md)."""

    k: int = 3  # reasons and strategies per customer
    at_risk_threshold: float = 0.30  # churn probability from which a customer counts as at risk
    watch_threshold: float = 0.15  # from here to at_risk: on the watch list (report risk bands)
    beeswarm_rows: int = 5000  # rows sampled for the SHAP beeswarm plot


RISK_BANDS = {"low": 0.0, "medium": 0.15, "high": 0.30}
EXPLAIN_POLICIES = ("all", "at_risk", "none")


@dataclass(frozen=True)
class ScoreSpec:
    """Batch scoring and the registered churn model's outputs (docs/scoring.md).

    ``risk_bands`` maps each band to the lowest churn probability in it (kept sorted by that
    bound; the lowest must be 0). The registered churn model carries them, so changing them takes
    a new registration (the evaluate stage).
    """

    risk_bands: dict[str, float] = field(default_factory=lambda: dict(RISK_BANDS))
    at_risk_bands: tuple[str, ...] = ("high",)  # --explain at_risk: exact reasons for these
    explain: str = "at_risk"  # default of `tierwise score --explain`: all | at_risk | none

    def __post_init__(self) -> None:
        if not isinstance(self.risk_bands, dict) or not self.risk_bands:
            raise ValueError("risk_bands must map band names to lower bounds")
        pairs = sorted(((float(b), str(name)) for name, b in self.risk_bands.items()))
        bounds = [b for b, _ in pairs]
        if bounds[0] != 0.0 or len(set(bounds)) < len(bounds) or bounds[-1] > 1:
            raise ValueError("risk_bands: the lowest bound must be 0, bounds distinct and <= 1")
        bands = {name: bound for bound, name in pairs}
        if not all(bands) or not set(self.at_risk_bands) <= set(bands):
            raise ValueError(f"at_risk_bands must be among the risk_bands {list(bands)}")
        if self.explain not in EXPLAIN_POLICIES:
            raise ValueError(f"explain must be one of {EXPLAIN_POLICIES}")
        object.__setattr__(self, "risk_bands", bands)
