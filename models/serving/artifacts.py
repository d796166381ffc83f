"""A registered model version as files: LightGBM's model text and one JSON document, no pickle.

``write_artifacts`` writes them for ``mlflow.pyfunc.log_model(python_model=MODEL_CODE,
artifacts=...)`` (models from code): MLflow copies the files and ``model_code.py`` into the
version, and ``model_code.py`` rebuilds the model from them on load. The JSON holds everything
but the trees as plain data (``spec`` of models/serving/outputs.py): kind, format version,
features and their groups, the iteration to predict with, the calibrator as numbers (churn), the
class codes (tier), and the churn model's scoring outputs with the strategy catalog as data.
"""

from __future__ import annotations

import json
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from models.serving.outputs import FORMAT_VERSION
from models.strategies.catalog import Catalog, Source, Strategy

MODEL_CODE = Path(__file__).with_name("model_code.py")  # stored with every version
BOOSTER, SPEC = "booster", "spec"  # the artifact names model_code.py reads
FILES = {BOOSTER: "booster.txt", SPEC: "model.json"}
PROFILE, PROFILE_FILE = "profile", "profile.json"  # the churn model's monitoring reference


def _source(source: Source) -> dict[str, str]:
    return {"file": source.file, "title": source.title, "section": source.section,
            "quote": source.quote}  # fmt: skip


def _strategy_data(s: Strategy) -> dict[str, Any]:
    """One strategy in strategies.yaml's form (``parse_catalog`` reads it back)."""
    entry: dict[str, Any] = {
        "id": s.id, "name_zh": s.name_zh, "name_en": s.name_en, "action": s.action,
        "source": _source(Source(s.source_file, s.source_title, s.section, s.quote)),
        "applies_to": {dim: list(values) for dim, values in s.applies_to.items()},
        "triggers": [{"group": g, "direction": d} for g, d in s.triggers],
        "anchor": s.anchor,
    }  # fmt: skip
    if s.see_also:
        entry["see_also"] = [_source(src) for src in s.see_also]
    return entry


def catalog_data(catalog: Catalog) -> dict[str, Any]:
    """The catalog as the YAML document it came from: ``parse_catalog(catalog_data(c)) == c``."""
    return {
        "version": catalog.version,
        "strategies": [_strategy_data(s) for s in catalog.strategies],
    }


def spec_document(kind: str, model: dict[str, Any], outputs: dict[str, Any] | None) -> dict:
    """The JSON document of a version: metadata, the model's ``to_dict()`` and, for the churn
    model, its scoring outputs (``None``: the probability only)."""
    doc = {
        "format": "tierwise-model",
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "lightgbm": dist_version("lightgbm"),  # that wrote the trees; informational
        **model,
    }
    return doc if kind != "churn" else {**doc, "outputs": outputs}


def write_artifacts(model_text: str, spec: dict[str, Any], folder: Path) -> dict[str, str]:
    """Write the trees and the JSON document into ``folder``; the ``artifacts`` for log_model."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / file for name, file in FILES.items()}
    paths[BOOSTER].write_text(model_text, encoding="utf-8")
    text = json.dumps(spec, ensure_ascii=False, allow_nan=False, indent=1)
    paths[SPEC].write_text(text, encoding="utf-8")
    return {name: str(path) for name, path in paths.items()}


def write_profile(profile: dict[str, Any], folder: Path) -> dict[str, str]:
    """Write the monitoring reference profile (models/monitoring/profile.py) as an artifact."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PROFILE_FILE
    path.write_text(json.dumps(profile, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    return {PROFILE: str(path)}
