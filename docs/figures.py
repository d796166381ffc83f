"""Rewrite the run's figures in the Markdown docs from the committed reports/ (`make docs`).

A figure that comes from a run lives between markers, and nowhere else:

    <!-- figures:NAME -->
    ... written by this script from reports/*.json ...
    <!-- /figures:NAME -->

``.venv/bin/python docs/figures.py`` rewrites every marked block of docs/*.md and README.md;
``--check`` writes nothing and exits 1 when a block differs from what it would write (the test
suite runs the same check, so a run that changes reports/ without `make docs` fails CI).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.evaluation.records import HeadlineMetrics, SnapshotMetrics
from models.training.summary import PARTS, TrainSummary
from pipelines.io import load_json, save_text

log = logging.getLogger("figures")
ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"<!-- figures:(?P<name>[a-z0-9-]+) -->\n(?P<body>.*?)<!-- /figures:(?P=name) -->", re.S
)
MARKER = re.compile(r"<!-- /?figures:(?P<name>[^ ]*) -->")
CHURN_MODELS = {
    "lightgbm": "**LightGBM** ({calibration}-calibrated, {trees} trees)",
    "logistic": "logistic regression",
    "btyd": "BG/NBD 1 − p_alive (Platt-scaled)",
}
TIER_MODELS = {
    "lightgbm": "**LightGBM** ({trees} trees)",
    "markov": "Markov matrix by current tier",
}


class FiguresError(ValueError):
    """A marked block is unknown, unclosed or nested."""


@dataclass(frozen=True)
class Reports:
    """The committed records the docs quote."""

    train: TrainSummary
    metrics: HeadlineMetrics
    by_snapshot: SnapshotMetrics


def load_reports(folder: Path) -> Reports:
    return Reports(
        TrainSummary.from_json(load_json(folder / "train.json")),
        HeadlineMetrics.from_json(load_json(folder / "metrics.json")),
        SnapshotMetrics.from_json(load_json(folder / "metrics_by_snapshot.json")),
    )


def _prose(*paragraph_lines: str) -> str:
    """Each line wrapped at the docs' 100 columns (Markdown joins them back into one line)."""
    wrap = dict(width=100, break_long_words=False, break_on_hyphens=False)
    return "".join(textwrap.fill(line, **wrap) + "\n" for line in paragraph_lines)


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _range(values: Sequence[float], digits: int) -> str:
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def _split(r: Reports) -> str:
    s = r.train.split
    parts = [
        f"{name} {s.part(name).first} … {s.part(name).last} ({s.part(name).snapshots} snapshots)"
        for name in PARTS
    ]
    return _prose(f"{', '.join(parts)}; H = {s.horizon_days} days.")


def _test_set(r: Reports) -> str:
    test, rows = r.train.split.test, r.train.test_rows
    rate = r.metrics.churn["lightgbm"]["churn_rate"]
    return _prose(
        f"Test set: {test.snapshots} snapshots {test.first} … {test.last}, {rows.churn:,} churn "
        f"rows (churn rate {_pct(rate)}), {rows.tier:,} tier rows."
    )


def _churn_row(label: str, m: dict, bold: bool) -> str:
    cells = [f"{m['roc_auc']:.3f}", f"{m['pr_auc']:.3f}", f"{m['brier']:.4f}", f"{m['ece']:.4f}"]
    cells = [f"**{c}**" for c in cells] if bold else cells
    cells += [f"{m['top_decile_lift']:.2f}", _pct(m["top_decile_capture"])]
    return f"| {label} | {' | '.join(cells)} |"


def _churn_table(r: Reports) -> str:
    info = r.train.churn
    lines = [
        "| churn model (test) | ROC AUC | PR AUC | Brier | ECE | top-decile lift | capture |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, label in CHURN_MODELS.items():
        name = label.format(calibration=info.calibration.capitalize(), trees=info.trees)
        lines.append(_churn_row(name, r.metrics.churn[model], bold=model == "lightgbm"))
    return "\n".join(lines) + "\n"


def _tier_table(r: Reports) -> str:
    lines = ["| tier model (test) | log loss | accuracy |", "|---|---|---|"]
    for model, label in TIER_MODELS.items():
        m, bold = r.metrics.tier[model], model == "lightgbm"
        cells = [f"{m['log_loss']:.3f}", f"{m['accuracy']:.3f}"]
        cells = [f"**{c}**" for c in cells] if bold else cells
        lines.append(f"| {label.format(trees=r.train.tier.trees)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _drift(r: Reports) -> str:
    per_date = [r.by_snapshot.churn[t]["lightgbm"] for t in sorted(r.by_snapshot.churn)]
    auc, ece = ([m[k] for m in per_date] for k in ("roc_auc", "ece"))
    conversion = r.metrics.conversion
    return _prose(
        f"Per test snapshot LightGBM's ROC AUC stays within {_range(auc, 3)} and its ECE within "
        f"{_range(ece, 3)}; the churn rate is {_pct(per_date[0]['churn_rate'])} at the first test "
        f"snapshot and {_pct(per_date[-1]['churn_rate'])} at the last "
        "(`reports/metrics_by_snapshot.json`).",
        f"Conversion potential → borrower within H: {_pct(conversion.actual)} actual, "
        f"{_pct(conversion.predicted['lightgbm'])} LightGBM, "
        f"{_pct(conversion.predicted['markov'])} Markov.",
    )


def _training_time(r: Reports) -> str:
    s = r.train.seconds
    return _prose(
        f"Fitting time of the committed run (`reports/train.json`, `seconds`): churn LightGBM "
        f"{s.churn:.1f} s, logistic regression {s.logistic:.1f} s, tier LightGBM {s.tier:.1f} s."
    )


FIGURES: dict[str, Callable[[Reports], str]] = {
    "split": _split,
    "test-set": _test_set,
    "churn-table": _churn_table,
    "tier-table": _tier_table,
    "drift": _drift,
    "training-time": _training_time,
}


def render(text: str, reports: Reports) -> str:
    """``text`` with every marked block rewritten from ``reports``."""
    names = [m["name"] for m in MARKER.finditer(text)]
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise FiguresError(f"unknown figures block(s) {unknown}; known: {sorted(FIGURES)}")
    blocks = list(BLOCK.finditer(text))
    if 2 * len(blocks) != len(names) or any(MARKER.search(b["body"]) for b in blocks):
        raise FiguresError("a figures block is unclosed or nested")
    return BLOCK.sub(lambda m: _block(m["name"], reports), text)


def _block(name: str, reports: Reports) -> str:
    return f"<!-- figures:{name} -->\n{FIGURES[name](reports)}<!-- /figures:{name} -->"


def markdown_files(root: Path) -> list[Path]:
    return [*sorted((root / "docs").glob("*.md")), root / "README.md"]


def stale_files(root: Path, reports: Reports) -> list[Path]:
    """The Markdown files whose marked blocks differ from what ``render`` writes."""
    texts = {path: path.read_text(encoding="utf-8") for path in markdown_files(root)}
    return [path for path, text in texts.items() if render(text, reports) != text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument("--root", type=Path, default=ROOT, help="holds docs/ and README.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reports = load_reports(args.reports)
    stale = stale_files(args.root, reports)
    for path in stale:
        if args.check:
            log.error("%s: figures differ from %s; run `make docs`", path, args.reports)
        else:
            save_text(render(path.read_text(encoding="utf-8"), reports), path)
            log.info("rewrote %s", path)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
