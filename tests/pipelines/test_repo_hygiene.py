"""What a user's commands leave in the repository: the README's example outputs and `dvc plots
show`'s page are git-ignored, and the committed registry record names no machine's path."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from models.serving.records import RegistryRecord, VersionRecord

ROOT = Path(__file__).resolve().parents[2]


def _ignored(path: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, check=False)
    return done.returncode == 0


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_readmes_example_outputs_and_dvc_plots_are_git_ignored() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    outs = re.findall(r"--out ([\w./-]+\.(?:parquet|csv))", readme)
    assert outs, "the README shows no --out example"
    for out in [*outs, "dvc_plots/index.html"]:
        assert _ignored(out), f"{out} would land untracked in the repository"


def test_only_headline_metrics_are_dvc_metrics() -> None:
    """Per-snapshot tables are plots, the feature summary an output: `dvc metrics show` prints
    the headline files alone (the models' test metrics, the survival model's and the monitor's
    verdict on the test snapshots; each snapshot's figures are outputs)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    metrics = [m for s in stages.values() for e in s.get("metrics", []) for m in e]
    assert sorted(metrics) == [
        "${paths.metrics}",
        "${paths.monitor}",
        "${paths.survival_headline}",
        "${paths.uplift}",
    ]


def test_the_registry_record_names_the_store_relative_to_the_root(tmp_path) -> None:
    versions = {"churn": VersionRecord("tierwise-churn", "1", True, "no champion yet")}
    inside = RegistryRecord("r1", f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}", versions)
    assert inside.portable(tmp_path).tracking_uri == "sqlite:///mlruns.db"
    assert str(tmp_path) not in str(inside.portable(tmp_path).to_json())
    for other in ("sqlite:////elsewhere/x.db", "http://mlflow:5000", "sqlite:///relative.db"):
        record = RegistryRecord("r1", other, versions)
        assert record.portable(tmp_path) == record
