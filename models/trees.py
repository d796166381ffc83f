"""A LightGBM booster's trees as flat node arrays, and LightGBM's split decision, for the numba
tree walks of the survival model (``models.survival.forest``) and of TreeSHAP
(``models.explain.linear_shap``)."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

LEAF = -1
_ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| <= it counts as zero
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True)
class FlatTrees:
    """Trees of ``dump_model()`` as flat node arrays, a tree's nodes contiguous from its root."""

    feature: np.ndarray  # int32 per node: the split feature, LEAF for a leaf
    threshold: np.ndarray  # float64 per node
    default_left: np.ndarray  # bool per node
    missing: np.ndarray  # int8 per node: 0 None, 1 Zero, 2 NaN
    left: np.ndarray  # int32 per node: child indices (global)
    right: np.ndarray
    value: np.ndarray  # float64 per node: the leaf value (leaves only)
    count: np.ndarray  # float64 per node: the training rows through it
    roots: np.ndarray  # int32 per tree: its root node
    depth: np.ndarray  # int32 per tree: the most splits on any of its root-to-leaf paths
    distinct: np.ndarray  # int32 per tree: the most distinct split features on any such path

    @classmethod
    def from_dump(cls, dump: dict) -> FlatTrees:
        """The trees of ``booster.dump_model()``; numerical splits only (a categorical split
        raises ValueError)."""
        nodes: dict[str, list] = {k: [] for k in ("f", "t", "d", "m", "l", "r", "v", "c")}
        roots, depths, distinct = [], [], []
        for tree in dump["tree_info"]:
            root, depth, features = _flatten(tree["tree_structure"], nodes, ())
            roots.append(root)
            depths.append(depth)
            distinct.append(features)
        return cls(
            np.asarray(nodes["f"], np.int32), np.asarray(nodes["t"], np.float64),
            np.asarray(nodes["d"], np.bool_), np.asarray(nodes["m"], np.int8),
            np.asarray(nodes["l"], np.int32), np.asarray(nodes["r"], np.int32),
            np.asarray(nodes["v"], np.float64), np.asarray(nodes["c"], np.float64),
            np.asarray(roots, np.int32), np.asarray(depths, np.int32),
            np.asarray(distinct, np.int32),
        )  # fmt: skip

    def tree_nodes(self, tree: int) -> slice:
        """The node indices of tree ``tree``."""
        end = self.roots[tree + 1] if tree + 1 < len(self.roots) else len(self.feature)
        return slice(int(self.roots[tree]), int(end))


def _flatten(node: dict, nodes: dict[str, list], path: tuple[int, ...]) -> tuple[int, int, int]:
    """Append ``node``'s subtree (below the split features ``path``) to the flat arrays; its
    index, and the most splits and the most distinct split features on a path through it."""
    index = len(nodes["f"])
    for key in nodes:
        nodes[key].append(0)
    if "leaf_value" in node:
        nodes["f"][index], nodes["v"][index] = LEAF, float(node["leaf_value"])
        nodes["c"][index] = float(node.get("leaf_count", 0))
        return index, len(path), len(set(path))
    if node["decision_type"] != "<=":
        raise ValueError(f"{node['decision_type']!r} splits are not supported")
    feature = int(node["split_feature"])
    nodes["f"][index] = feature
    nodes["t"][index] = float(node["threshold"])
    nodes["d"][index] = bool(node["default_left"])
    nodes["m"][index] = _MISSING[node["missing_type"]]
    nodes["c"][index] = float(node.get("internal_count", 0))
    nodes["l"][index], *left = _flatten(node["left_child"], nodes, (*path, feature))
    nodes["r"][index], *right = _flatten(node["right_child"], nodes, (*path, feature))
    return index, max(left[0], right[0]), max(left[1], right[1])


@numba.njit(cache=True, inline="always")
def goes_left(x: float, threshold: float, default_left: bool, missing: int) -> bool:
    """LightGBM's numerical decision: NaN counts as zero unless the missing type is NaN; a
    missing type Zero (NaN) sends zero (NaN) the default way; else ``x <= threshold``."""
    if np.isnan(x) and missing != 2:
        x = 0.0
    if (missing == 1 and -_ZERO <= x <= _ZERO) or (missing == 2 and np.isnan(x)):
        return default_left
    return x <= threshold
