"""Reason codes: the groups pushing risk up, each worded from its top feature and that value.

``reason_codes`` picks, per row, the k feature groups with the largest positive contribution
(log-odds), words each from the group's most contributing feature (models/explain/templates.py)
and appends the group's contribution in display units, e.g. "3 complaints in the last 90 days
(+0.12)". ``render_reason`` words one reason (the scalar reference); ``render_reasons`` words
many, looping over features and distinct values, never over customers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import cache

import numpy as np
import pandas as pd
from scipy.special import expit

from features.registry import registry_for
from models.explain.templates import TEMPLATES, ReasonTemplate

BASE_VALUE = "base_value"  # the contributions' base column (models/explain/frame.py re-exports it)
Link = Callable[[np.ndarray], np.ndarray]
_PLURALS = {"{s}": ("", "s"), "{ies}": ("y", "ies")}


def format_value(kind: str, value: float, labels: tuple[str, ...] = ()) -> str:
    """One value as it appears in a reason (kinds: models/explain/templates.py)."""
    value = value + 0.0  # -0.0 reads 0
    if kind in ("count", "days"):
        return f"{round(value):,}"
    if kind == "share":
        return f"{value * 100:.0f}%"
    if kind == "percent":
        return f"{value * 100:.2f}%"
    if kind == "pp":
        return f"{value * 100:.1f} pp"
    if kind == "amount":
        digits = 0 if value == 0 else max(0, math.floor(math.log10(abs(value))) - 2)
        return f"{round(value, -digits):,.0f}"
    if kind == "label":
        code = round(value)
        return labels[code] if 0 <= code < len(labels) else f"{value:g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def contribution_code(values: np.ndarray) -> np.ndarray:
    """Contributions rounded for display, as integers: thousandths times 2, plus 1 when the
    magnitude is below 0.005 (shown with three decimals, else with two)."""
    values = np.nan_to_num(np.asarray(values, dtype=float))
    small = np.abs(values) < 0.005
    thousandths = np.where(small, np.round(values * 1000), np.round(values * 100) * 10)
    return thousandths.astype(np.int64) * 2 + small


def _code_text(code: int) -> str:
    thousandths, small = divmod(int(code), 2)
    return f"{thousandths / 1000:+.3f}" if small else f"{thousandths / 1000:+.2f}"


def format_contribution(value: float) -> str:
    """Signed, two decimals (three below 0.005 in magnitude): ``+0.12``, ``+0.004``."""
    return _code_text(contribution_code(np.array([value]))[0])


def template_for(
    feature: str,
    templates: Mapping[str, ReasonTemplate] = TEMPLATES,
    descriptions: Mapping[str, str] | None = None,
    short_window: int = 90,
) -> ReasonTemplate:
    """The feature's template with ``{w}`` and ``{short}`` filled in (exact name, then a
    ``prefix_`` + window key, then the registry description)."""
    window = ""
    template = templates.get(feature)
    if template is None:
        match = re.fullmatch(r"(.*_)(\d+)", feature)
        if match and match.group(1) in templates:
            template, window = templates[match.group(1)], match.group(2)
    if template is None:
        text = (descriptions or {}).get(feature, feature)
        template = ReasonTemplate(f"{text}: {{v}}", missing=f"{text}: none on record")

    def fill(text: str | None) -> str | None:
        return (
            None
            if text is None
            else text.replace("{w}", window).replace("{short}", str(short_window))
        )

    return replace(
        template,
        text=fill(template.text),
        negative=fill(template.negative),
        missing=fill(template.missing),
        zero=fill(template.zero),
    )


def with_currency(template: ReasonTemplate, currency: str) -> ReasonTemplate:
    """An amount template with ``currency`` before every amount (``CNY 1,870,000``)."""
    if template.kind != "amount" or not currency:
        return template
    put = lambda text: None if text is None else text.replace("{v}", f"{currency} {{v}}")  # noqa: E731
    return replace(template, text=put(template.text), negative=put(template.negative))


def render_reason(template: ReasonTemplate, value: float, contribution: float) -> str:
    """One reason, e.g. ``"3 complaints in the last 90 days (+0.12)"`` (the scalar reference)."""
    if value is None or np.isnan(value):
        text = template.missing or template.text.replace("{v}", "none on record")
    elif value == 0 and template.zero is not None:
        text = template.zero
    else:
        use_negative = template.negative is not None and value < 0
        text = template.negative if use_negative else template.text
        shown = format_value(template.kind, abs(value) if use_negative else value, template.labels)
        text = text.replace("{v}", shown)
        for token, (one, many) in _PLURALS.items():
            text = text.replace(token, one if shown == "1" else many)
    return f"{text} ({format_contribution(contribution)})"


def _format_many(values: np.ndarray, fmt: Callable[[float], str]) -> np.ndarray:
    """``fmt`` over an array, called once per distinct value (never once per customer)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    shown = np.array([fmt(v) for v in uniques], dtype=object)
    return shown[codes]


def _variants(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(prefix, suffix) around ``{v}`` for a singular and a plural reading."""
    forms = []
    for plural in (0, 1):
        filled = text
        for token, words in _PLURALS.items():
            filled = filled.replace(token, words[plural])
        forms.append(filled.split("{v}", 1))
    return np.array([f[0] for f in forms], dtype=object), np.array(
        [f[1] for f in forms], dtype=object
    )


def _render_feature(template: ReasonTemplate, values: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    negative = (values < 0) & (template.negative is not None)
    magnitude = np.where(missing, 0.0, np.where(negative, -values, values)) + 0.0
    shown = _format_many(magnitude, lambda v: format_value(template.kind, v, template.labels))
    plural = (shown != "1").astype(int)
    out = np.empty(len(values), dtype=object)
    for flag, text in ((False, template.text), (True, template.negative)):
        rows = negative == flag
        if text is not None and rows.any():
            pre, post = _variants(text)
            out[rows] = pre[plural[rows]] + shown[rows] + post[plural[rows]]
    if missing.any():
        out[missing] = template.missing or template.text.replace("{v}", "none on record")
    if template.zero is not None:
        out[values == 0] = template.zero
    return out


def render_reasons(
    feature_index: np.ndarray,
    values: np.ndarray,
    contributions: np.ndarray,
    templates: list[ReasonTemplate],
) -> np.ndarray:
    """Reasons for many (feature, value, contribution) triples; ``feature_index`` points into
    ``templates`` (one per model feature, from ``template_for``); -1 gives ""."""
    feature_index = np.asarray(feature_index)
    values = np.asarray(values, dtype=float)
    out = np.full(len(feature_index), "", dtype=object)
    if len(feature_index) == 0:
        return out
    order = np.argsort(feature_index, kind="stable")
    used, starts = np.unique(feature_index[order], return_index=True)
    for j, rows in zip(used, np.split(order, starts[1:]), strict=True):
        if j >= 0:
            out[rows] = _render_feature(templates[j], values[rows])
    rows = feature_index >= 0
    shown = _format_many(contribution_code(np.asarray(contributions)[rows]), _code_text)
    out[rows] = out[rows] + " (" + shown + ")"
    return out


def reason_column_names(k: int) -> list[str]:
    """reason_1, reason_1_group, reason_1_contribution, reason_2, ... up to k."""
    return [f"reason_{j}{s}" for j in range(1, k + 1) for s in ("", "_group", "_contribution")]


def split_base(contribs: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(feature names, rows x features values, base values) of a contributions table, without
    copying when ``base_value`` is its last column (as the explain functions make it)."""
    if contribs.columns[-1] != BASE_VALUE:
        raise ValueError(f"contributions must end with the {BASE_VALUE!r} column")
    values = contribs.to_numpy(dtype=float)
    return list(contribs.columns[:-1]), values[:, :-1], values[:, -1]


def display_scale(contribs: pd.DataFrame, link: Link | None) -> np.ndarray:
    """Per row, the factor that turns log-odds contributions into probability points:
    (link(margin) - link(base)) / (margin - base), so the rescaled contributions add up to
    link(margin) - link(base) exactly; a monotone link keeps every sign and the order within the
    row. ``link=None`` keeps log-odds (factor 1)."""
    if link is None:
        return np.ones(len(contribs))
    _, values, base = split_base(contribs)
    margin = values.sum(axis=1) + base
    step = margin - base
    eps = 1e-4
    with np.errstate(invalid="ignore", divide="ignore"):
        secant = (link(margin) - link(base)) / step
        slope = (link(margin + eps) - link(margin - eps)) / (2 * eps)
    return np.where(np.abs(step) > 1e-6, secant, slope)


def top_groups(groups: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column positions of the k largest positive group contributions (-1 past the
    last positive one) and their values (NaN there); ties go to the earlier group."""
    values = np.nan_to_num(groups.to_numpy(dtype=float), nan=-np.inf)
    values = np.pad(values, ((0, 0), (0, max(0, k - values.shape[1]))), constant_values=-np.inf)
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(values, order, axis=1)
    keep = top > 0
    return np.where(keep, order, -1), np.where(keep, top, np.nan)


def _top_feature_by_group(values: np.ndarray, group_of: np.ndarray, n_groups: int) -> np.ndarray:
    """(rows, groups): the position of each group's most positive feature contribution."""
    best = np.zeros((len(values), n_groups), dtype=np.int64)
    for g in range(n_groups):
        columns = np.flatnonzero(group_of == g)
        block = np.nan_to_num(values[:, columns], nan=-np.inf)
        best[:, g] = columns[np.argmax(block, axis=1)]
    return best


@cache
def _descriptions_for(windows: tuple[int, ...], value_window: int) -> dict[str, str]:
    return {f.name: f.description for f in registry_for(windows, value_window)}


def _registry_descriptions(feature_names: Sequence[str]) -> dict[str, str]:
    """The registry's descriptions for the windows the feature names carry (none: no windows)."""
    windows = sorted(
        {int(m.group(1)) for f in feature_names if (m := re.fullmatch(r"loan_n_(\d+)", f))}
    )
    values = [int(m.group(1)) for f in feature_names if (m := re.fullmatch(r"loan_value_(\d+)", f))]
    if not windows or not values:
        return {}
    return _descriptions_for(tuple(windows), values[0])


def _short_window(feature_names: Sequence[str]) -> int:
    windows = [int(m.group(1)) for f in feature_names if (m := re.fullmatch(r"loan_n_(\d+)", f))]
    return min(windows, default=90)


def feature_templates(
    feature_names: Sequence[str],
    templates: Mapping[str, ReasonTemplate] = TEMPLATES,
    descriptions: Mapping[str, str] | None = None,
    currency: str = "",
) -> list[ReasonTemplate]:
    """One filled-in template per feature (descriptions default to the feature registry's);
    amounts carry ``currency`` (params explain.currency) when given."""
    descriptions = _registry_descriptions(feature_names) if descriptions is None else descriptions
    short = _short_window(feature_names)
    filled = (template_for(f, templates, descriptions, short) for f in feature_names)
    return [with_currency(t, currency) for t in filled]


def reason_codes(
    contribs: pd.DataFrame,
    groups: pd.DataFrame,
    X: pd.DataFrame,
    feature_groups: Mapping[str, str],
    k: int = 3,
    *,
    link: Link | None = expit,
    templates: list[ReasonTemplate] | None = None,
    min_contribution: float = 0.0,
) -> pd.DataFrame:
    """reason_j, reason_j_group, reason_j_contribution for j = 1..k: the k groups pushing risk up
    most (chosen on log-odds), each worded from its most contributing feature and that feature's
    value, with the group's contribution in display units ("" / NaN past the last positive one,
    and for a contribution below ``min_contribution`` display units: params
    explain.min_contribution; such a push is too small to act on)."""
    features, values, _ = split_base(contribs)
    if list(X.columns) != features:
        raise ValueError("X must hold the contributions' features, in the same order")
    templates = feature_templates(features) if templates is None else templates
    position = {g: i for i, g in enumerate(groups.columns)}
    group_of = np.array([position[feature_groups[f]] for f in features])
    slot_group, slot_value = top_groups(groups, k)
    shown = slot_value * display_scale(contribs, link)[:, None]
    tiny = ~(shown >= min_contribution)  # NaN (no slot) too; the display scale keeps the order
    slot_group, shown = np.where(tiny, -1, slot_group), np.where(tiny, np.nan, shown)
    best = _top_feature_by_group(values, group_of, len(position))
    rows = np.arange(len(contribs))[:, None]
    feature = np.where(slot_group >= 0, best[rows, np.maximum(slot_group, 0)], -1)
    value = X.to_numpy(dtype=float)[rows, np.maximum(feature, 0)]
    text = render_reasons(feature.ravel(), value.ravel(), shown.ravel(), templates).reshape(-1, k)
    names = np.append(np.asarray(groups.columns, dtype=object), "")[slot_group]
    columns = np.array(reason_column_names(k)).reshape(k, 3)
    out = {}
    for j, (text_col, group_col, value_col) in enumerate(columns):
        out |= {text_col: text[:, j], group_col: names[:, j], value_col: shown[:, j]}
    return pd.DataFrame(out, index=contribs.index)
