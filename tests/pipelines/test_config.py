"""pipelines/config.py: params.yaml is the only source of settings. Unknown, missing and mistyped
keys fail with their dotted name, thresholds that must agree are checked together (the message
names both keys), derived keys follow their source, and the dataclasses carry no defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from features.registry import value_feature
from pipelines import config as config_module
from pipelines.config import (
    PROJECT_PARAMS,
    Config,
    ConfigError,
    config_with,
    load_config,
    load_defaults,
)

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"


def _write(tmp_path: Path, edit) -> Path:
    """params.yaml with ``edit(raw)`` applied, written to tmp_path."""
    raw = yaml.safe_load(PARAMS.read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_load_defaults_reads_the_repository_params(params_cfg):
    assert PROJECT_PARAMS == PARAMS and PROJECT_PARAMS.is_file()
    assert params_cfg == load_config(PARAMS)
    assert params_cfg.root == ROOT
    assert load_defaults(root="/elsewhere").root == Path("/elsewhere")


def test_load_defaults_without_a_source_tree_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(config_module, "PROJECT_PARAMS", tmp_path / "params.yaml")
    with pytest.raises(ConfigError, match="editable install"):
        load_defaults()


def _settings_classes() -> list[type]:
    seen, todo = [], [Config]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        hints = __import__("typing").get_type_hints(cls)
        todo += [h for h in hints.values() if dataclasses.is_dataclass(h)]
    return seen


def test_settings_dataclasses_carry_no_defaults():
    """One source of truth: a default in a dataclass would be a second copy of params.yaml."""
    classes = _settings_classes()
    assert len(classes) >= 15  # Config, its sections and the booster, logistic, markov params
    with_defaults = [
        f"{cls.__name__}.{f.name}"
        for cls in classes
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert with_defaults == []


def test_unknown_param_fails_with_its_name(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text().replace("horizon_days:", "horizon_dayz:"))
    with pytest.raises(ConfigError, match="labels.horizon_dayz"):
        load_config(params)


def test_missing_param_fails_with_its_name(tmp_path):
    text = PARAMS.read_text().replace("  active_window_days: 365", "")
    params = tmp_path / "params.yaml"
    params.write_text(text)
    with pytest.raises(ConfigError, match="missing key.*labels.active_window_days"):
        load_config(params)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("labels", "horizon_days", "half a year", "labels.horizon_days"),
        ("labels", "horizon_days", 180.5, "whole number"),
        ("evaluate", "replace_broken_champion", "yes", "true or false"),
        ("snapshots", "start", "not a date", "snapshots.start"),
        ("split", "test_snapshots", 0, "test_snapshots"),
        ("score", "risk_bands", [0.0, 0.3], "score"),
        ("score", "watch_bands", ["high"], "watch_bands must be risk_bands"),
        ("score", "explain", "most", "explain must be one of"),
        ("explain", "min_contribution", -0.01, "min_contribution"),
        ("explain", "currency", "Chinese yuan", "currency"),
    ],
)
def test_a_bad_value_fails_with_its_name(tmp_path, section, key, value, message):
    params = _write(tmp_path, lambda raw: raw[section].__setitem__(key, value))
    with pytest.raises(ConfigError, match=message):
        load_config(params)


def test_a_section_that_is_not_a_mapping_fails(tmp_path):
    params = _write(tmp_path, lambda raw: raw.__setitem__("labels", 180))
    with pytest.raises(ConfigError, match="labels must be a mapping"):
        load_config(params)


def test_at_risk_means_the_same_customers_in_scores_and_report(params_cfg):
    moved = config_with(
        params_cfg,
        score={"risk_bands": {"low": 0, "high": 0.4}},
        explain={"at_risk_threshold": 0.4},
    )
    assert moved.score.risk_bands == {"low": 0.0, "medium": 0.15, "high": 0.4}  # merged
    with pytest.raises(ConfigError, match="score.at_risk_bands.*explain.at_risk_threshold"):
        config_with(params_cfg, explain={"at_risk_threshold": 0.4})


def test_the_watch_list_starts_at_the_band_below_the_at_risk_bands(params_cfg, tmp_path):
    assert params_cfg.explain.watch_threshold == params_cfg.score.risk_bands["medium"]
    with pytest.raises(ConfigError, match="score.risk_bands.*explain.watch_threshold"):
        config_with(params_cfg, explain={"watch_threshold": 0.2})
    moved = config_with(
        params_cfg, score={"risk_bands": {"medium": 0.2}}, explain={"watch_threshold": 0.2}
    )
    assert moved.explain.watch_threshold == 0.2
    params = _write(tmp_path, lambda raw: raw["score"]["risk_bands"].__setitem__("medium", 0.1))
    with pytest.raises(ConfigError, match="explain.watch_threshold is 0.15"):
        load_config(params)


def test_the_value_window_is_one_key(params_cfg, tmp_path):
    window = params_cfg.definitions.value_window_days
    assert params_cfg.features.value_window_days == params_cfg.kpis.value_window_days == window
    assert value_feature(window) == "loan_value_365"
    short = config_with(params_cfg, definitions={"value_window_days": 180})
    assert short.features.value_window_days == short.kpis.value_window_days == 180
    assert short.defs.value_window_days == 180

    same = _write(tmp_path, lambda raw: raw["features"].__setitem__("value_window_days", window))
    assert load_config(same, root=ROOT) == load_config(PARAMS)  # by hand and equal: accepted
    other = _write(tmp_path, lambda raw: raw["features"].__setitem__("value_window_days", 180))
    with pytest.raises(ConfigError, match="features.value_window_days.*definitions.value_window"):
        load_config(other)
    with pytest.raises(ConfigError, match="kpis.value_window_days.*definitions.value_window"):
        config_with(params_cfg, kpis={"value_window_days": 90})
    bypass = dataclasses.replace(params_cfg.features, value_window_days=90)
    with pytest.raises(ConfigError, match="features.value_window_days"):
        dataclasses.replace(params_cfg, features=bypass)


def test_config_with_changes_only_what_it_is_told(params_cfg):
    changed = config_with(params_cfg, train={"churn": {"n_estimators": 10}}, labels={})
    assert changed.train.churn.n_estimators == 10
    assert changed.train.tier == params_cfg.train.tier
    assert dataclasses.replace(changed, train=params_cfg.train) == params_cfg
    assert changed.root == params_cfg.root
    with pytest.raises(ConfigError, match="train.churn.n_estimatorz"):
        config_with(params_cfg, train={"churn": {"n_estimatorz": 10}})
    with pytest.raises(ConfigError, match="unknown section"):
        config_with(params_cfg, trian={"seed": 1})


def test_paths_resolve_against_the_root(params_cfg, tmp_path):
    cfg = load_config(PARAMS, root=tmp_path)
    assert cfg.path(cfg.paths.features) == tmp_path / "data/features/feature_table.parquet"
    assert cfg.path(Path("/abs/x")) == Path("/abs/x")
    assert cfg.data_dir == tmp_path / "data/world"


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"survival": {"model": {"horizons_months": [3, 24]}}}, "reach past survival.events"),
        ({"survival": {"model": {"survivor_share": 0.0}}}, "survivor_share must be in"),
        ({"survival": {"events": {"months": 0}}}, "survival.months must be >= 1"),
        ({"survival": {"events": {"arrears_dpd_days": 0}}}, "arrears_dpd_days"),
        ({"survival": {"events": {"lag": 1}}}, "unknown key.*survival.events.lag"),
    ],
)
def test_survival_params_are_checked(params_cfg, sections, message):
    with pytest.raises(ConfigError, match=message):
        config_with(params_cfg, **sections)
