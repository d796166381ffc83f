"""The run's figures in the docs are the committed reports' (docs/figures.py, `make docs`): a run
that changes reports/ and forgets `make docs` fails here, and no figure of the run is typed in
outside a marked block."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("docs_figures", REPO / "docs" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


figures = _load_script()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The committed reports/ (HEAD's), so a local `make run` (new timings) does not make the
    committed docs look stale; outside a git checkout, the files as they are."""
    folder = tmp_path_factory.mktemp("committed")
    archive = subprocess.run(
        ["git", "archive", "HEAD", "reports"], cwd=REPO, capture_output=True, check=False
    )
    if archive.returncode != 0:
        return figures.load_reports(REPO / "reports")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return figures.load_reports(folder / "reports")


def test_the_docs_show_the_committed_reports(reports):
    stale = figures.stale_files(REPO, reports)
    assert not stale, f"run `make docs`: {[str(p.relative_to(REPO)) for p in stale]} differ"


def test_every_figure_has_its_block_in_the_models_page():
    text = (REPO / "docs" / "models.md").read_text(encoding="utf-8")
    for name in figures.FIGURES:
        assert f"<!-- figures:{name} -->" in text and f"<!-- /figures:{name} -->" in text, name


def test_a_changed_report_makes_the_check_fail(tmp_path, caplog):
    folder = shutil.copytree(REPO / "reports", tmp_path / "reports")
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    metrics["churn"]["lightgbm"]["roc_auc"] = 0.5
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    assert figures.main(["--check", "--reports", str(folder), "--root", str(REPO)]) == 1
    assert "models.md" in caplog.text and "make docs" in caplog.text
    rendered = figures.render(
        (REPO / "docs" / "models.md").read_text(encoding="utf-8"), figures.load_reports(folder)
    )
    assert "| **0.500** |" in rendered


def test_make_docs_rewrites_only_the_blocks(tmp_path, reports):
    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    stale = (
        "before\n<!-- figures:tier-table -->\nold numbers\n<!-- /figures:tier-table -->\nafter\n"
    )
    (root / "docs" / "page.md").write_text(stale, encoding="utf-8")
    (root / "README.md").write_text("no figures here\n", encoding="utf-8")
    args = ["--reports", str(REPO / "reports"), "--root", str(root)]
    assert figures.main(["--check", *args]) == 1
    assert figures.main(args) == 0
    written = (root / "docs" / "page.md").read_text(encoding="utf-8")
    assert written.startswith("before\n") and written.endswith("after\n")
    assert "old numbers" not in written and "| Markov matrix by current tier |" in written
    assert figures.main(["--check", *args]) == 0
    assert (root / "README.md").read_text(encoding="utf-8") == "no figures here\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- figures:nope -->\nx\n<!-- /figures:nope -->\n", "unknown figures block"),
        ("<!-- figures:split -->\nnever closed\n", "unclosed or nested"),
        ("<!-- figures:split -->\n<!-- figures:drift -->\n<!-- /figures:drift -->\n"
         "<!-- /figures:split -->\n", "unclosed or nested"),
    ],
)  # fmt: skip
def test_a_broken_block_fails_loudly(text, message, reports):
    with pytest.raises(figures.FiguresError, match=message):
        figures.render(text, reports)


# A dated measurement recorded with its command (a benchmark's table) may share a number with the
# run by chance; it sits between these markers and is not the run's figure.
RECORDED = re.compile(r"<!-- recorded -->.*?<!-- /recorded -->", re.DOTALL)


def _outside_blocks(text: str) -> str:
    return RECORDED.sub("", figures.BLOCK.sub("", text))


def test_no_figure_of_the_run_is_typed_in_outside_a_block(reports):
    """The headline figures as the docs would write them must not appear in prose."""
    churn, tier, train = reports.metrics.churn["lightgbm"], reports.metrics.tier, reports.train
    typed = [
        f"{churn['roc_auc']:.3f}",
        f"{churn['pr_auc']:.3f}",
        f"{tier['lightgbm']['log_loss']:.3f}",
        f"{train.test_rows.churn:,}",
        f"{train.test_rows.tier:,}",
        f"{train.churn.trees} trees",
        f"{train.tier.trees} trees",
    ]
    for path in figures.markdown_files(REPO):
        prose = _outside_blocks(path.read_text(encoding="utf-8"))
        found = [f for f in typed if re.search(rf"(?<![\d.,]){re.escape(f)}(?![\d,])", prose)]
        assert not found, f"{path.relative_to(REPO)} types in {found}: use a figures block"
