"""Typed settings that models/ receives from the edge (pipelines/config.py builds them).

No defaults here: every number comes from params.yaml (pipelines/config.py; tests and benchmarks
use ``pipelines.config.load_defaults()``); docs/models.md explains each one. Kept free of heavy
imports so that parsing params never loads LightGBM.
"""

from __future__ import annotations

from dataclasses import dataclass

CALIBRATION_METHODS = ("auto", "isotonic", "platt")
FLOAT32_CHOICES = ("auto", "true", "false")


@dataclass(frozen=True)
class SplitSpec:
    """Out-of-time split: the last ``test_snapshots`` labelled snapshots are the test set.

    None (``auto`` in params.yaml): the size follows the span (models/training/split.py)."""

    test_snapshots: int | None
    validation_snapshots: int | None  # latest training snapshots: early stopping, calibration
    # the window the validation purge removes before the validation slice; None: the test
    # purge's (the label horizon; the survival split's is shorter: docs/survival.md)
    validation_purge_days: int | None

    def __post_init__(self) -> None:
        sizes = (self.test_snapshots, self.validation_snapshots)
        if any(size is not None and size < 1 for size in sizes):
            raise ValueError("test_snapshots and validation_snapshots must be at least 1 or auto")
        if self.validation_purge_days is not None and self.validation_purge_days < 0:
            raise ValueError("validation_purge_days must be at least 0 or auto")


@dataclass(frozen=True)
class BoosterParams:
    """LightGBM settings shared by the churn (binary) and tier (multiclass) models."""

    num_leaves: int
    learning_rate: float
    n_estimators: int  # upper bound; early stopping picks the number of trees
    early_stopping_rounds: int
    min_child_samples: int
    feature_fraction: float
    bagging_fraction: float
    bagging_freq: int
    lambda_l2: float
    max_depth: int
    num_threads: int

    def __post_init__(self) -> None:
        if self.num_leaves < 2 or self.n_estimators < 1 or self.num_threads < 1:
            raise ValueError("num_leaves >= 2, n_estimators >= 1 and num_threads >= 1 required")
        if not 0 < self.learning_rate <= 1:
            raise ValueError("learning_rate must be in (0, 1]")
        if self.early_stopping_rounds < 1:
            raise ValueError("early_stopping_rounds must be at least 1")


@dataclass(frozen=True)
class LogisticParams:
    C: float  # inverse L2 strength of the logistic-regression baseline (sklearn's C)
    max_iter: int


@dataclass(frozen=True)
class MarkovParams:
    alpha: float  # additive smoothing of the transition counts

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError("markov alpha must be >= 0")


@dataclass(frozen=True)
class SampleSpec:
    """Customer-level sampling of the fit and validation slices (models/training/sampling.py)."""

    fraction: float  # share of customers kept, stratified by tier and churn label (1 = all)
    max_rows: int  # fit + validation rows above which the share is lowered to fit (0: no cap)

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError("sample.fraction must be in (0, 1]")
        if self.max_rows < 0:
            raise ValueError("sample.max_rows must be >= 0 (0: no cap)")


@dataclass(frozen=True)
class TrainSpec:
    seed: int
    calibration: str  # auto: isotonic or platt, whichever validates better
    calibration_folds: int  # customer-grouped folds of the validation slice for "auto"
    churn: BoosterParams
    tier: BoosterParams
    logistic: LogisticParams
    markov: MarkovParams
    sample: SampleSpec  # customers of the fit and validation slices (docs/models.md)
    batch_rows: int  # rows per Parquet batch when the train stage reads the feature table
    float32: str  # auto (float32 when the book is sampled, else float64) | true | false
    tier_refit: bool  # refit the tier model on fit + validation at the early-stopped trees

    def __post_init__(self) -> None:
        if self.batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        if self.float32.lower() not in FLOAT32_CHOICES:  # YAML's true / false arrive as "True"
            raise ValueError(f"float32 must be one of {FLOAT32_CHOICES}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}")
        if self.calibration_folds < 2:
            raise ValueError("calibration_folds must be at least 2")


@dataclass(frozen=True)
class EvaluateSpec:
    bins: int  # calibration bins (ECE, calibration curve)
    top_fraction: float  # lift and capture rate in the top decile
    transition_threshold: float  # P(upgrade) or P(downgrade) at or above: predicted move
    promotion_tolerance: float  # how much worse a metric may be and still count as "not worse"
    replace_broken_champion: bool  # a champion that cannot score: error, or replace it
    promote_in_experiments: bool  # `dvc exp run` may move champion aliases (else: challengers)

    def __post_init__(self) -> None:
        if self.bins < 2 or not 0 < self.top_fraction <= 1:
            raise ValueError("bins >= 2 and top_fraction in (0, 1] required")
        if not 0 < self.transition_threshold < 1 or self.promotion_tolerance < 0:
            raise ValueError("transition_threshold in (0, 1) and promotion_tolerance >= 0")


@dataclass(frozen=True)
class KpiSpec:
    """Document 004's evaluation methods: retention, CLV, NPS, CSI."""

    clv_horizon_days: int  # CLV sums expected margin over this many days (whole horizons)
    discount_rate: float  # yearly
    margin_share: float  # share of the value-window interest income counted as margin
    survey_window_days: int  # NPS and CSI read each customer's latest answer in this window
    # The trailing window of the value feature (loan_value_<days>): pipelines/config.py fills it
    # from definitions.value_window_days, not from a key of its own.
    value_window_days: int

    def __post_init__(self) -> None:
        if self.clv_horizon_days <= 0 or self.survey_window_days <= 0:
            raise ValueError("clv_horizon_days and survey_window_days must be positive")
        if self.discount_rate < 0 or self.margin_share < 0:
            raise ValueError("discount_rate and margin_share must be >= 0")
        if self.value_window_days <= 0:
            raise ValueError("value_window_days must be positive")


@dataclass(frozen=True)
class ExplainSpec:
    """The explain stage (docs/explanations.md)."""

    k: int  # reasons and strategies per customer
    at_risk_threshold: float  # churn probability from which a customer counts as at risk
    watch_threshold: float  # from here to at_risk: on the watch list (report risk bands)
    beeswarm_rows: int  # rows sampled for the SHAP beeswarm plot
    min_contribution: float  # a reason below this many probability points is not shown
    currency: str  # put before every amount in reasons and the report ("" for none)

    def __post_init__(self) -> None:
        if not 0 <= self.min_contribution < 1:
            raise ValueError("min_contribution must be in [0, 1) probability points")
        if self.currency != self.currency.strip() or len(self.currency) > 8:
            raise ValueError("currency must be a short code or symbol, e.g. CNY, without spaces")


EXPLAIN_POLICIES = ("all", "at_risk", "watch", "none")


@dataclass(frozen=True)
class ScoreSpec:
    """Batch scoring and the registered churn model's outputs (docs/scoring.md).

    ``risk_bands`` maps each band to the lowest churn probability in it (kept sorted by that
    bound; the lowest must be 0). The registered churn model carries them, so changing them takes
    a new registration (the evaluate stage).
    """

    risk_bands: dict[str, float]
    at_risk_bands: tuple[str, ...]  # --explain at_risk: exact reasons for these
    explain: str  # default of `tierwise score --explain`: all | at_risk | watch | none
    watch_bands: tuple[str, ...]  # --explain watch: reasons for these too (the watch list)

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
        if not set(self.watch_bands) <= set(bands) - set(self.at_risk_bands):
            raise ValueError(f"watch_bands must be risk_bands {list(bands)} not at risk")
        if self.explain not in EXPLAIN_POLICIES:
            raise ValueError(f"explain must be one of {EXPLAIN_POLICIES}")
        object.__setattr__(self, "risk_bands", bands)


@dataclass(frozen=True)
class SurvivalSpec:
    """The competing-risks time-to-churn model (docs/survival.md)."""

    horizons_months: tuple[int, ...]  # cumulative incidence reported at these months
    max_train_rows: int  # (customer, snapshot) rows sampled for the person-period fit
    survivor_share: float  # survivors' person-period rows kept (weighted by its inverse)
    act_lead_days: int  # act_by: this many days before the likely churn month
    seed: int
    booster: BoosterParams  # LightGBM multiclass on person-period rows

    def __post_init__(self) -> None:
        if not self.horizons_months or min(self.horizons_months) < 1:
            raise ValueError("survival.model.horizons_months must be positive month counts")
        if self.max_train_rows < 100:
            raise ValueError("survival.model.max_train_rows must be at least 100")
        if self.act_lead_days < 0:
            raise ValueError("survival.model.act_lead_days must be >= 0")
        if not 0 < self.survivor_share <= 1:
            raise ValueError("survival.model.survivor_share must be in (0, 1]")


@dataclass(frozen=True)
class UpliftSpec:
    """The uplift T-learner (docs/uplift.md): each arm's LightGBM classifier and the out-of-time
    evaluation on held-out campaigns."""

    num_leaves: int
    learning_rate: float
    n_estimators: int
    min_child_samples: int
    subsample: float
    colsample_bytree: float
    min_arm_rows: int  # an arm with fewer rows is not fitted (its strategy gets no uplift)
    test_months: int  # the last campaign months held out for evaluation
    budget: float  # the budget of the stage's plan for the report (its latest snapshot)
    seed: int

    def __post_init__(self) -> None:
        if min(self.num_leaves, self.n_estimators, self.min_child_samples, self.test_months) < 1:
            raise ValueError(
                "uplift: num_leaves, n_estimators, min_child_samples, test_months >= 1"
            )

    def lightgbm_params(self) -> dict:
        return {"num_leaves": self.num_leaves, "learning_rate": self.learning_rate,
                "n_estimators": self.n_estimators, "min_child_samples": self.min_child_samples,
                "subsample": self.subsample, "subsample_freq": 1,
                "colsample_bytree": self.colsample_bytree, "n_jobs": 1}  # fmt: skip
