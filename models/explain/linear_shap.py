"""Exact path-dependent TreeSHAP in O(nodes × depth) per row and tree: Linear TreeSHAP.

LightGBM's ``pred_contrib`` (and shap's TreeExplainer) run the path-dependent TreeSHAP of
Lundberg et al. (2020), O(leaves × depth²) per row and tree. The same values come from a
polynomial form (Yu et al., "Linear TreeShap", NeurIPS 2022). For a leaf l with value v, let F
be the features on its path; for j in F, p_j is 1 if the row follows every edge of l's path that
splits on j (else 0) and r_j the product of those edges' cover ratios (child count / parent
count). The path-dependent expectation given a coalition S is v Π_{j∈S} p_j Π_{j∈F∖S} r_j, and
the Shapley weights are Beta integrals, so

    φ_i(l) = v (p_i − r_i) ∫₀¹ Π_{j∈F, j≠i} (r_j + (p_j − r_j) t) dt
           = ∫₀¹ G_l(t) (p_i − r_i) / (r_i + (p_i − r_i) t) dt,
    G_l(t) = v Π_{j∈F} (r_j + (p_j − r_j) t).

The integrand is a polynomial of degree |F| − 1, integrated exactly by Gauss–Legendre with
⌈m / 2⌉ points, m the most distinct features on any path of the tree; so every G is held as its
values at those points. One depth-first walk per
row and tree carries G down (at an edge on feature j, the factor of j's running (p, r) is
replaced by the updated one), sums the leaves' G up (S_n: the sum over the leaves below node n),
and at each edge into n on feature j adds ∫ S_n(t) [(p − r) / (r + (p − r) t)] dt for j's (p, r)
after the edge, minus the same for j's (p, r) before it (nothing when j is new on the path).
Over a leaf's path these terms telescope to φ_j(l) for its deepest edge on j, the only one whose
factor G_l holds: exact, with no per-feature unwinding.

The answers equal LightGBM's ``pred_contrib`` up to float rounding (tests/models/
test_linear_shap.py: within 1e-9; the last column, the expected value, is each tree's
count-weighted mean leaf). Decisions are LightGBM's, as in ``models.survival.forest``: a
numerical ``value <= threshold``, NaN as zero unless the missing type is NaN, zero or NaN sent
the default way by a Zero or NaN missing type. Categorical splits are refused.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import lightgbm as lgb
import numba
import numpy as np

from models.trees import LEAF, FlatTrees, goes_left


@dataclass(frozen=True)
class ShapForest:
    """A booster's trees as flat node arrays with their data counts (the covers), each tree's
    expected value and its Gauss–Legendre points."""

    trees: FlatTrees
    expected: np.ndarray  # float64 per tree: its count-weighted mean leaf value
    points: np.ndarray  # (trees, most points) Gauss–Legendre nodes on [0, 1], enough for the
    weights: np.ndarray  # tree's paths (n_points of them), weights 0 after them
    n_points: np.ndarray  # int64 per tree
    n_features: int

    @classmethod
    def from_booster(cls, booster: lgb.Booster, num_iteration: int | None = None) -> ShapForest:
        dump = booster.dump_model(num_iteration=num_iteration or None)
        trees = FlatTrees.from_dump(dump)
        expected = np.array([_expected(tree["tree_structure"]) for tree in dump["tree_info"]])
        # a leaf's integrand has degree (distinct features on its path) - 1: ceil(that / 2)
        # points integrate it exactly
        sizes = np.maximum((trees.distinct + 1) // 2, 1)
        points = np.zeros((len(trees.roots), int(sizes.max(initial=1))))
        weights = np.zeros_like(points)
        for t, size in enumerate(sizes):
            x, w = np.polynomial.legendre.leggauss(int(size))
            points[t, :size], weights[t, :size] = (x + 1.0) / 2.0, w / 2.0
        return cls(trees, expected, points, weights, sizes.astype(np.int64), booster.num_feature())


# booster -> {iterations: ShapForest | None}; an entry goes with its booster
_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shap_forest(booster: lgb.Booster, num_iteration: int) -> ShapForest | None:
    """``ShapForest.from_booster``, built once per booster and iteration count (a scoring job
    explains one slice at a time with the same model); None for a booster with a categorical
    split, which this module does not walk."""
    cached = _FORESTS.setdefault(booster, {})
    key = (num_iteration, booster.current_iteration())
    if key not in cached:
        try:
            cached[key] = ShapForest.from_booster(booster, num_iteration)
        except ValueError:
            cached[key] = None
    return cached[key]


def _expected(node: dict) -> float:
    """The count-weighted mean of the tree's leaf values (TreeSHAP's base value of the tree)."""
    if "leaf_value" in node:
        return float(node["leaf_value"])
    left, right = node["left_child"], node["right_child"]
    n_left = left.get("leaf_count", left.get("internal_count"))
    n_right = right.get("leaf_count", right.get("internal_count"))
    total = n_left + n_right
    return (n_left * _expected(left) + n_right * _expected(right)) / total


@numba.njit(cache=True)
def workspace(depth, points, n_features):
    """``tree_shap``'s working arrays for trees of at most ``depth`` splits per path and
    ``points`` quadrature points: G and the leaves' sum S at each depth of the path, the node,
    its children visited (0 none, 1 left, 2 both), the feature of the edge into it and that
    feature's (p, r) before the edge; each feature's running (p, r), all ones between trees;
    with a month feature, the months [lo, hi] still on the path and the product of the p's."""
    return (np.empty((depth + 1, points)), np.empty((depth + 1, points)),
            np.empty(depth + 1, np.int32), np.empty(depth + 1, np.int8),
            np.empty(depth + 1, np.int32), np.empty(depth + 1), np.empty(depth + 1),
            np.ones(n_features), np.ones(n_features), np.empty(depth + 1, np.int64),
            np.empty(depth + 1, np.int64), np.empty(depth + 1))  # fmt: skip


@numba.njit(cache=True)
def tree_shap(x, root, feature, threshold, default_left, missing, left, right, value, count,
              points, weights, scale, phi, work, month=-1, months=1):  # fmt: skip
    """Add ``scale`` × the TreeSHAP values of the tree at ``root`` for the row ``x`` to ``phi``
    (per feature; the expected value is not added), integrating on ``points`` with ``weights``.
    ``work``: from ``workspace``, left as it came.

    With ``month`` (a feature index), the values are the mean over the rows x with the month
    k = 1..``months`` (x[month] is not read): G is multilinear in the p's, and only the month's
    p differs between those rows, so the mean is one walk with the month's p the share of the
    months that follow the path's month edges. Every other feature's value is then exact; the
    month's is not (its terms divide by its own factor), so ``phi[month]`` gets the tree's
    mean output instead (the leaves' values × the product of the p's): the month's value is
    that minus the tree's expected value and the others' values."""
    q = points.shape[0]
    g, s, node_at, state, feat, p_old, r_old, p_now, r_now, lo, hi, h = work
    g[0, :q] = 1.0
    s[0, :q] = 0.0
    state[0] = 0
    node_at[0] = root
    lo[0], hi[0], h[0] = 1, months, 1.0
    d = 0
    while True:
        n = node_at[d]
        if feature[n] == LEAF or state[d] == 2:
            if feature[n] == LEAF:
                for k in range(q):
                    s[d, k] = value[n] * g[d, k]
                if month >= 0:
                    phi[month] += scale * value[n] * h[d]
            if d == 0:
                return
            f = feat[d]
            pn, rn, po, ro = p_now[f], r_now[f], p_old[d], r_old[d]
            if f != month:
                total = 0.0
                for k in range(q):
                    t = points[k]
                    term = (pn - rn) / (rn + (pn - rn) * t) - (po - ro) / (ro + (po - ro) * t)
                    total += weights[k] * s[d, k] * term
                phi[f] += scale * total
            p_now[f], r_now[f] = po, ro
            for k in range(q):
                s[d - 1, k] += s[d, k]
            d -= 1
            continue
        f = feature[n]
        first = state[d] == 0
        child = left[n] if first else right[n]
        state[d] = 1 if first else 2
        po, ro = p_now[f], r_now[f]
        a, b = lo[d], hi[d]
        if f == month:  # months k <= threshold go left
            split = np.int64(np.floor(threshold[n]))
            a, b = (a, min(b, split)) if first else (max(a, split + 1), b)
            pn = max(b - a + 1, 0) / months
        else:
            follows_left = goes_left(x[f], threshold[n], default_left[n], missing[n])
            pn = po if follows_left == first else 0.0
        rn = ro * count[child] / count[n]
        for k in range(q):
            t = points[k]
            g[d + 1, k] = g[d, k] * (rn + (pn - rn) * t) / (ro + (po - ro) * t)
            s[d + 1, k] = 0.0
        p_now[f], r_now[f] = pn, rn
        d += 1
        node_at[d], state[d], feat[d], p_old[d], r_old[d] = child, 0, f, po, ro
        if month >= 0:
            lo[d], hi[d] = a, b
            h[d] = h[d - 1] * pn / po if po > 0.0 else 0.0


@numba.njit(parallel=True, cache=True)
def _contributions(X, trees, feature, threshold, default_left, missing, left, right, value,
                   count, roots, expected, points, weights, n_points, depth, out):  # fmt: skip
    n, m = X.shape
    for i in numba.prange(n):
        work = workspace(depth.max(), points.shape[1], m)
        for t in trees:
            q = n_points[t]
            tree_shap(X[i], roots[t], feature, threshold, default_left, missing, left, right,
                      value, count, points[t, :q], weights[t, :q], 1.0, out[i], work)  # fmt: skip
            out[i, m] += expected[t]


def contributions(forest: ShapForest, X: np.ndarray, trees: np.ndarray | None = None) -> np.ndarray:
    """(n, features + 1) TreeSHAP values of ``trees`` (indices; every tree by default) for the
    rows of ``X``, the expected value last: LightGBM's ``pred_contrib`` layout for one class."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    f = forest.trees
    trees = np.arange(len(f.roots)) if trees is None else np.asarray(trees, np.int64)
    out = np.zeros((len(X), forest.n_features + 1))
    _contributions(X, trees.astype(np.int64), f.feature, f.threshold, f.default_left, f.missing,
                   f.left, f.right, f.value, f.count, f.roots, forest.expected, forest.points,
                   forest.weights, forest.n_points, f.depth, out)  # fmt: skip
    return out
