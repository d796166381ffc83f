"""Explanations: TreeSHAP contributions, summed by feature group, worded as reason codes and turned
into catalog strategies. docs/explanations.md has the design; everything here is pure.

Grain: one row per feature-table row (customer_id, as_of). Contributions are in the model's raw
units (log-odds) with a ``base_value`` column, so each row sums to the raw margin. Only the text
and the ``reason_k_contribution`` columns are rescaled to probability points (``link``).

- ``feature_contributions``: path-dependent TreeSHAP, LightGBM ``pred_contrib``'s values computed
  by Linear TreeSHAP (``models.explain.linear_shap``; ``pred_contrib`` itself for a model with a
  categorical split); ``shap_contributions``: ``shap.TreeExplainer`` (tests and benchmarks; the
  same numbers, imported lazily).
- ``downgrade_contributions``: the tier model's log-odds of moving below the current tier,
  attributed to features through the per-class contributions (``class_set_contributions``).
- ``group_contributions`` -> ``reason_codes`` + ``recommend_frame`` -> ``explain_frame``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit, logsumexp

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import GROUPS, LIFECYCLE_STATE, LOYALTY_LEVEL, LOYALTY_STAGE, TIER
from features.spec import LIFECYCLE_STATES, LOYALTY_LEVELS, LOYALTY_STAGES, TIERS
from models.explain.linear_shap import contributions, shap_forest
from models.explain.reasons import BASE_VALUE, Link, reason_codes, reason_column_names, split_base
from models.explain.templates import ReasonTemplate
from models.strategies.catalog import Catalog, recommend_frame, strategy_columns

Model = lgb.Booster | lgb.LGBMModel
QUADRATURE_NODES = 24


def explanation_columns(k: int = 3) -> list[str]:
    """The columns ``explain_frame`` adds after customer_id and as_of, in order."""
    return [*reason_column_names(k), *strategy_columns(k)]


def _booster(model: Model) -> lgb.Booster:
    return model.booster_ if isinstance(model, lgb.LGBMModel) else model


def _frame(X: pd.DataFrame | np.ndarray, names: list[str]) -> pd.DataFrame:
    """X as one float64 block (so that ``to_numpy`` is a view) with the features as columns."""
    if isinstance(X, pd.DataFrame):
        if list(X.columns) != names:
            raise ValueError("X's columns must be the model's features, in training order")
        return pd.DataFrame(X.to_numpy(dtype="float64"), index=X.index, columns=names)
    return pd.DataFrame(np.asarray(X, dtype="float64"), columns=names)


def _raw_contributions(
    model: Model, X: pd.DataFrame | np.ndarray, num_iteration: int | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """X as a frame, and the TreeSHAP values as (rows, classes, features + 1); the last is the
    base."""
    booster = _booster(model)
    X = _frame(X, booster.feature_name())
    classes = booster.num_model_per_iteration()
    if X.empty:  # LightGBM refuses empty input; nothing to explain is a valid request
        return X, np.zeros((0, classes, X.shape[1] + 1))
    if num_iteration is None:
        num_iteration = booster.best_iteration or booster.current_iteration()
    forest = shap_forest(booster, num_iteration)
    if forest is None:  # a categorical split: LightGBM's own TreeSHAP
        raw = booster.predict(X, pred_contrib=True, num_iteration=num_iteration)
        return X, np.asarray(raw).reshape(len(X), classes, -1)
    values, trees = X.to_numpy(), np.arange(len(forest.trees.roots))
    return X, np.stack(
        [contributions(forest, values, trees[j::classes]) for j in range(classes)], 1
    )


def _pick_class(values: np.ndarray, class_index: int | None) -> np.ndarray:
    """(rows, classes, columns) -> (rows, columns) for one class; binary models have one."""
    if values.shape[1] > 1 and class_index is None:
        raise ValueError("a multiclass model needs class_index (or use downgrade_contributions)")
    index = 0 if class_index is None else class_index
    if not 0 <= index < values.shape[1]:
        raise ValueError(f"class_index {class_index} out of range for {values.shape[1]} class(es)")
    return values[:, index, :]


def feature_contributions(
    model: Model,
    X: pd.DataFrame | np.ndarray,
    class_index: int | None = None,
    *,
    num_iteration: int | None = None,
) -> pd.DataFrame:
    """TreeSHAP contributions to the raw score (log-odds; one class's softmax logit for a
    multiclass model), LightGBM's ``pred_contrib`` values: one column per feature, then
    ``base_value``; each row sums to the raw margin. Uses the best iteration when there is one."""
    X, raw = _raw_contributions(model, X, num_iteration)
    return pd.DataFrame(_pick_class(raw, class_index), index=X.index, columns=[*X, BASE_VALUE])


_SHAP_TREE_KEYS = ("children_left", "children_right", "children_default", "features",
                   "thresholds", "values", "node_sample_weight")  # fmt: skip


def shap_contributions(
    model: Model, X: pd.DataFrame | np.ndarray, class_index: int | None = None
) -> pd.DataFrame:
    """The same table as ``feature_contributions`` from ``shap.TreeExplainer`` (slow to import;
    for tests and benchmarks). The explainer reads the whole model (no best iteration).

    It runs shap's own TreeSHAP (C++ ``dense_tree_shap``) on shap's own parse of the trees, one
    class at a time: given a LightGBM model, TreeExplainer otherwise hands the work back to
    LightGBM's ``pred_contrib`` (shap 0.51, ``TreeExplainer.shap_values``), and a check of
    pred_contrib against that would compare LightGBM with itself."""
    import shap

    booster = _booster(model)
    X = _frame(X, booster.feature_name())
    parsed = shap.TreeExplainer(booster).model
    if parsed.model_type != "lightgbm" or parsed.trees is None:
        raise TypeError(f"shap could not read the trees of this {parsed.model_type!r} model")
    k = booster.num_model_per_iteration()  # tree i belongs to class i % k
    values, base = [], []
    for c in range(k):
        trees = [
            {key: getattr(tree, key) for key in _SHAP_TREE_KEYS} for tree in parsed.trees[c::k]
        ]
        explainer = shap.TreeExplainer({"trees": trees})  # shap's own "internal" model
        values.append(np.asarray(explainer.shap_values(X.to_numpy(), check_additivity=False)))
        base.append(float(np.ravel(explainer.expected_value)[0]))
    values = np.stack(values, axis=1)  # (rows, classes, features)
    base = np.broadcast_to(np.reshape(base, (1, k, 1)), (len(X), k, 1))
    full = np.concatenate([values, base], axis=2)
    return pd.DataFrame(_pick_class(full, class_index), index=X.index, columns=[*X, BASE_VALUE])


def _log_sum_within(z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise log sum of exp(z) over the masked classes (-inf for an empty mask)."""
    with np.errstate(invalid="ignore"):
        return logsumexp(np.where(mask, z, -np.inf), axis=1)


def _set_log_odds(z: np.ndarray, target: np.ndarray) -> np.ndarray:
    """log P(class in target) - log P(class not in target) under softmax(z), row by row."""
    with np.errstate(invalid="ignore"):
        return _log_sum_within(z, target) - _log_sum_within(z, ~target)


def _set_log_odds_gradient(z: np.ndarray, target: np.ndarray) -> np.ndarray:
    """d(set log-odds)/dz: the softmax within the target set minus the softmax within the rest."""
    with np.errstate(invalid="ignore"):
        inside = np.exp(np.where(target, z, -np.inf) - _log_sum_within(z, target)[:, None])
        outside = np.exp(np.where(target, -np.inf, z) - _log_sum_within(z, ~target)[:, None])
    return inside - outside


def class_set_contributions(
    model: Model,
    X: pd.DataFrame | np.ndarray,
    target: np.ndarray,
    *,
    num_iteration: int | None = None,
    nodes: int = QUADRATURE_NODES,
) -> pd.DataFrame:
    """Contributions to the log-odds that a multiclass model's outcome falls in a row-specific
    set of classes (``target``: rows x classes, bool), built from the per-class TreeSHAP values.

    With z = b + sum_f phi_f (logits, base b) and g(z) the set log-odds, feature f gets
    (integral over t in [0, 1] of grad g(b + t(z - b)) dt) . phi_f: Gauss-Legendre with ``nodes``
    points. The attributions add up to g(z) - g(b) (``base_value`` holds g(b)); with two classes
    they are exactly phi_target - phi_other. Rows whose set is empty or full are NaN.
    """
    X, raw = _raw_contributions(model, X, num_iteration)
    target = np.asarray(target, dtype=bool)
    if target.shape != raw.shape[:2]:
        raise ValueError(f"target must be rows x classes {raw.shape[:2]}, got {target.shape}")
    base, logits = raw[:, :, -1], raw.sum(axis=2)
    t, weight = np.polynomial.legendre.leggauss(nodes)
    path_weights = np.zeros_like(base)
    for t_q, w_q in zip((t + 1) / 2, weight / 2, strict=True):
        path_weights += w_q * _set_log_odds_gradient(base + t_q * (logits - base), target)
    values = np.einsum("nk,nkf->nf", path_weights, raw[:, :, :-1])
    full = np.column_stack([values, _set_log_odds(base, target)])
    full[~(target.any(axis=1) & ~target.all(axis=1))] = np.nan
    return pd.DataFrame(full, index=X.index, columns=[*X, BASE_VALUE])


def downgrade_contributions(
    model: Model,
    X: pd.DataFrame | np.ndarray,
    current_tier: Sequence[str] | pd.Series,
    class_codes: Sequence[int] | None = None,
    *,
    num_iteration: int | None = None,
) -> pd.DataFrame:
    """Contributions to the tier model's log-odds of a next tier below the current one.

    ``class_codes[j]`` is the TIERS code of the booster's class j (TierModel.class_codes; default
    0..k-1). Customers in the lowest tier cannot move down: their rows are NaN.
    """
    k = _booster(model).num_model_per_iteration()
    codes = np.arange(k) if class_codes is None else np.asarray(class_codes)
    current = pd.Categorical(np.asarray(current_tier, dtype=object), categories=TIERS).codes
    if (current < 0).any():
        raise ValueError(f"unknown tier value(s) in current_tier; expected one of {TIERS}")
    target = codes[None, :] < current[:, None]
    return class_set_contributions(model, X, target, num_iteration=num_iteration)


def _indicator(features: Sequence[str], feature_groups: Mapping[str, str]) -> pd.DataFrame:
    unknown = [f for f in features if f not in feature_groups]
    if unknown:
        raise KeyError(f"no feature group for: {', '.join(unknown[:5])}")
    used = {feature_groups[f] for f in features}
    groups = [g for g in GROUPS if g in used] + sorted(used - set(GROUPS))
    matrix = np.array([[feature_groups[f] == g for g in groups] for f in features], dtype=float)
    return pd.DataFrame(matrix, index=list(features), columns=groups)


def group_contributions(contribs: pd.DataFrame, feature_groups: Mapping[str, str]) -> pd.DataFrame:
    """Contributions summed by feature group (columns in GROUPS order; ``base_value`` left out),
    as contributions @ a (features x groups) 0/1 indicator matrix."""
    features, values, _ = split_base(contribs)
    indicator = _indicator(features, feature_groups)
    return pd.DataFrame(
        values @ indicator.to_numpy(), index=contribs.index, columns=indicator.columns
    )


# Each state column, and the model feature that holds it as an ordinal code (features/build.py).
STATE_RANKS = {
    TIER: ("rel_tier_rank", TIERS),
    LIFECYCLE_STATE: ("rel_lifecycle_rank", LIFECYCLE_STATES),
    LOYALTY_LEVEL: ("rel_loyalty_rank", LOYALTY_LEVELS),
    LOYALTY_STAGE: ("rel_stage_rank", LOYALTY_STAGES),
}


def customer_states(feature_table: pd.DataFrame) -> pd.DataFrame:
    """tier, lifecycle_state, loyalty_level, loyalty_stage: the state columns when the table has
    them, else decoded from their rank features (so a model input of features only works)."""
    out = {}
    for column, (rank, labels) in STATE_RANKS.items():
        if column in feature_table.columns:
            out[column] = feature_table[column].to_numpy(dtype=object)
        elif rank in feature_table.columns:
            codes = feature_table[rank].to_numpy(dtype=float)
            if np.isnan(codes).any():
                raise ValueError(f"{rank} is missing for some rows; cannot read {column}")
            out[column] = np.asarray(labels, dtype=object)[codes.astype(np.int64)]
        else:
            raise KeyError(f"feature table lacks {column!r} (and its rank feature {rank!r})")
    return pd.DataFrame(out, index=feature_table.index)


def explain_frame(
    model: Model | None,
    feature_table: pd.DataFrame,
    feature_names: Sequence[str],
    feature_groups: Mapping[str, str],
    catalog: Catalog,
    k: int = 3,
    *,
    rows: np.ndarray | pd.Series | None = None,
    contributions: pd.DataFrame | None = None,
    link: Link | None = expit,
    templates: list[ReasonTemplate] | None = None,
    min_contribution: float = 0.0,
) -> pd.DataFrame:
    """customer_id, as_of (those present), reason_1..k with reason_j_group and
    reason_j_contribution, and strategy_1..k, on ``feature_table``'s index.

    ``rows`` (bool, one per row) limits the TreeSHAP work to the customers who need it: the
    others get no reasons and the strategies of their state alone. Contributions default to the
    model's own via pred_contrib (the binary churn model); pass ``contributions`` (on the
    explained rows' index; ``model`` may then be None) for another view, e.g.
    ``downgrade_contributions``. States come from ``customer_states``. ``link`` sets the display
    units of the reason contributions: the booster's probability (default), a calibrator's
    ``predict`` for calibrated probability points, or None for log-odds. Reasons below
    ``min_contribution`` (display units) are not shown (``reason_codes``).
    """
    names = list(feature_names)
    states = customer_states(feature_table)
    chosen = feature_table if rows is None else feature_table[np.asarray(rows, dtype=bool)]
    if rows is not None and not feature_table.index.is_unique:
        raise ValueError("explaining selected rows needs a feature table with a unique index")
    X = _frame(chosen[names], names)
    if contributions is None and model is None:
        raise ValueError("explain_frame needs a model or precomputed contributions")
    contribs = feature_contributions(model, X) if contributions is None else contributions
    if not contribs.index.equals(X.index) or list(contribs.columns[:-1]) != names:
        raise ValueError("contributions must be on the explained rows' index and features")
    groups = group_contributions(contribs, feature_groups)
    reasons = reason_codes(
        contribs, groups, X, feature_groups, k,
        link=link, templates=templates, min_contribution=min_contribution,
    )  # fmt: skip
    if rows is not None:
        groups = groups.reindex(feature_table.index)  # NaN drivers count as 0
        texts = [c for c in reasons.columns if not c.endswith("_contribution")]
        reasons = reasons.reindex(feature_table.index).fillna({c: "" for c in texts})
    strategies = recommend_frame(catalog, pd.concat([groups, states], axis=1), k)
    ids = feature_table[[c for c in (CUSTOMER_ID, AS_OF) if c in feature_table.columns]]
    return pd.concat([ids, reasons, strategies], axis=1)
