"""The small world's feature table and one training run, built once per session (the world
itself is in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_feature_table
from features.contract import Tables, data_end
from features.registry import feature_groups
from features.snapshots import snapshot_dates
from features.spec import Definitions, FeatureSpec
from models.spec import BoosterParams, SplitSpec, TrainSpec
from models.training.train import TrainResult, train_models
from pipelines.config import Config


def fast_booster(params: BoosterParams) -> BoosterParams:
    """The params' booster with fewer, faster trees: enough signal for the tests."""
    return replace(
        params, n_estimators=300, learning_rate=0.1, early_stopping_rounds=30, min_child_samples=20
    )


@pytest.fixture(scope="session")
def small_table(small_world: Tables, defs: Definitions, spec: FeatureSpec) -> pd.DataFrame:
    end = data_end(small_world)
    dates = snapshot_dates(small_world, None, None, defs.active_window_days, end)
    return build_feature_table(small_world, dates, defs, spec, data_end=end)


@pytest.fixture(scope="session")
def split_spec(params_cfg: Config) -> SplitSpec:
    return replace(params_cfg.split, test_snapshots=3, validation_snapshots=2)


@pytest.fixture(scope="session")
def train_spec(params_cfg: Config) -> TrainSpec:
    train = params_cfg.train
    return replace(train, seed=3, churn=fast_booster(train.churn), tier=fast_booster(train.tier))


@pytest.fixture(scope="session")
def model_features(spec: FeatureSpec) -> dict[str, str]:
    return feature_groups(spec)


@pytest.fixture(scope="session")
def trained(small_table, split_spec, train_spec, model_features) -> TrainResult:
    return train_models(small_table, split_spec, train_spec, 180, model_features)


# --- headless Chromium for the report test (tests/models/test_report.py) -------------------------
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_PACKAGE = "chromium"  # Debian's package


def _find_chromium() -> str | None:
    override = os.environ.get("TIERWISE_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def _install_command() -> list[str] | None:
    """apt-get as root (a container or CI image), or through passwordless sudo when CI or
    TIERWISE_INSTALL_CHROMIUM=1 allows it; None when the set-up may not or cannot install.
    TIERWISE_INSTALL_CHROMIUM=0 never installs."""
    allowed = os.environ.get("TIERWISE_INSTALL_CHROMIUM", "").strip().lower()
    if allowed in ("0", "false", "no") or shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    opted_in = allowed in ("1", "true", "yes") or bool(os.environ.get("CI"))
    sudo_ok = (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0
    )
    return ["sudo", "-n"] if opted_in and sudo_ok else None


def _install_chromium(prefix: list[str], package: str = CHROMIUM_PACKAGE) -> str:
    """Install a Debian package (chromium by default) with apt-get; '' on success, else why."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    )
    for step in steps:
        try:
            done = subprocess.run(
                [*prefix, *step], capture_output=True, text=True, env=env, timeout=900, check=False
            )
        except subprocess.TimeoutExpired:
            return f"`{' '.join(step)}` timed out"
        if done.returncode != 0:
            return f"`{' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-400:]}"
    return ""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium. When none is installed, the set-up installs Debian's
    package (see ``_install_command``); the test is skipped, with the reason, only where it
    cannot be installed. TIERWISE_CHROMIUM=/path/to/chrome picks a binary."""
    found = _find_chromium()
    if found:
        return found
    if os.environ.get("TIERWISE_CHROMIUM"):
        pytest.skip(f"TIERWISE_CHROMIUM={os.environ['TIERWISE_CHROMIUM']} is not a file")
    prefix = _install_command()
    if prefix is None:
        pytest.skip(
            "chromium is not installed and the test set-up cannot install it (needs apt-get and "
            "root, or passwordless sudo with CI=1 or TIERWISE_INSTALL_CHROMIUM=1): run "
            "`apt-get install chromium` or set TIERWISE_CHROMIUM to a Chrome/Chromium binary"
        )
    why = _install_chromium(prefix)
    found = _find_chromium()
    if found is None:
        pytest.skip(f"chromium could not be installed: {why or 'not on PATH after apt-get'}")
    return found


# Debian's CJK fonts (Noto Sans CJK, named in the report's font stack; docs/scoring.md, "The
# report"). The report test installs them the way it installs chromium.
CJK_FONT_PACKAGE = "fonts-noto-cjk"


def _cjk_fonts() -> list[str]:
    if shutil.which("fc-list") is None:
        return []
    done = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def cjk_font() -> str:
    """The family of an installed font with Chinese glyphs; installs fonts-noto-cjk when none
    is there and the set-up may (as for ``chromium``), else skips with the reason."""
    found = _cjk_fonts()
    if found:
        return found[0]
    prefix = _install_command()
    if prefix is None:
        pytest.skip(f"no CJK font installed and the set-up cannot install {CJK_FONT_PACKAGE}")
    why = _install_chromium(prefix, CJK_FONT_PACKAGE)
    found = _cjk_fonts()
    if not found:
        pytest.skip(f"{CJK_FONT_PACKAGE} could not be installed: {why or 'no font after apt-get'}")
    return found[0]


# --- batch scoring (tests/models/test_score.py) ---------------------------------------------------
@pytest.fixture(scope="session")
def score_rows(small_table: pd.DataFrame) -> pd.DataFrame:
    """Every customer known at the small world's last snapshot, as `tierwise score` sees them:
    feature rows without labels, prospects and long-gone customers included."""
    from features.labels import LABEL_COLUMNS

    last = small_table[small_table["as_of"] == small_table["as_of"].max()]
    return last.drop(columns=list(LABEL_COLUMNS)).reset_index(drop=True)


@pytest.fixture(scope="session")
def scoring_model(trained, params_cfg):
    """The trained churn model with the outputs the registry logs (the params' score and k)."""
    from models.serving.pyfunc import ChurnOutputs, RegisteredChurnModel
    from models.strategies.catalog import load_catalog

    outputs = ChurnOutputs.from_spec(params_cfg.score, load_catalog(), params_cfg.explain.k)
    return RegisteredChurnModel(trained.models.churn, outputs)
