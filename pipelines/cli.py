"""The `tierwise` command line: one command per DVC stage, plus one-date features.

Exit codes: 0 success; 1 unexpected error; 2 invalid input data (contract violation, too few
snapshots for the split, an unknown registered model version, a champion that cannot be loaded
or cannot score the test set) or invalid params, and for `score`
a request that cannot be served (unknown model, alias or version; a model registered without the
scoring outputs; no customer known at --as-of; a format the engine cannot write); 3 the output
exists and --overwrite was not given; 4 `monitor` (and `score --monitor`) gave the verdict
retrain (docs/monitoring.md); 130 (SIGINT) or 143 (SIGTERM) interrupted, nothing written.
"""

from __future__ import annotations

import os

# LightGBM's OpenMP threads busy-wait on a shared 2-core VM unless told otherwise; this must be
# set before lightgbm is first imported (STACK-NOTES.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import importlib
import logging
import signal
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.logging import RichHandler

from features.validation import ContractError
from models.evaluation.errors import ChampionError
from models.records import RecordError
from models.training.split import SplitError
from pipelines.config import DEFAULT_PARAMS, Config, ConfigError, load_config
from pipelines.io import BadRequestError, OutputExistsError

EXIT_ERROR, EXIT_INVALID, EXIT_EXISTS = 1, 2, 3
EXIT_SIGNAL_BASE = 128  # interrupted by signal N: exit 128 + N, as a shell reports it

app = typer.Typer(
    name="tierwise",
    help="Churn and loyalty-tier transitions of business borrowers, explained down to strategy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
err_console = Console(stderr=True)

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="params.yaml to read", exists=True, dir_okay=False)
]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )
    signal.signal(signal.SIGTERM, _raise_interrupted)


class Interrupted(BaseException):
    """SIGTERM, raised in the main thread like SIGINT's KeyboardInterrupt: every ``finally``
    runs, so atomic writes remove their temporary files (a BaseException: ``except Exception``
    does not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _interrupted(signum: int) -> typer.Exit:
    name = signal.Signals(signum).name
    err_console.print(f"[bold red]interrupted[/] by {name}: nothing was written", highlight=False)
    return typer.Exit(EXIT_SIGNAL_BASE + signum)


def _run(step: Callable[[], object]) -> None:
    """Run a step, turning the errors users cause into a clear message and an exit code."""
    try:
        step()
    except KeyboardInterrupt as err:
        raise _interrupted(signal.SIGINT) from err
    except Interrupted as err:
        raise _interrupted(err.signum) from err
    except BadRequestError as err:
        err_console.print(f"[bold red]cannot run[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    except ContractError as err:
        err_console.print(f"[bold red]invalid input data[/]\n{err}", markup=True, highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    except ConfigError as err:
        err_console.print(f"[bold red]invalid params[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    except RecordError as err:
        err_console.print(f"[bold red]unreadable stage output[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    except SplitError as err:
        err_console.print(f"[bold red]cannot split the data[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    except ChampionError as err:
        err_console.print(f"[bold red]champion not replaced[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    except OutputExistsError as err:
        err_console.print(f"[bold red]refusing to overwrite[/] {err}", highlight=False)
        raise typer.Exit(EXIT_EXISTS) from err
    except FileNotFoundError as err:
        err_console.print(f"[bold red]missing input[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err


def _config(params: Path) -> Config:
    try:
        return load_config(params, root=Path.cwd())
    except ConfigError as err:
        err_console.print(f"[bold red]invalid params[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err


def _as_of_date(value: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(value).normalize()
    except ValueError as err:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from err


STAGES = {
    "generate": "Stage `generate`: write the built-in synthetic world to paths.world.",
    "train": "Stage `train`: churn and tier models with their baselines, on an out-of-time split.",
    "evaluate": "Stage `evaluate`: metrics, KPIs and plots; log to MLflow; register both models.",
    "explain": "Stage `explain`: reasons, strategies and SHAP views for the last test snapshot.",
    "report": "Stage `report`: the run's self-contained HTML report (reports/report.html).",
    "survival": "Stage `survival`: competing-risks time to churn and its cause, with baselines.",
    "uplift": "Stage `uplift`: uplift per strategy from randomised campaigns, Qini out of time.",
}


def _stage_command(name: str, help_text: str) -> None:
    """Register `tierwise NAME`: parse params, run pipelines/NAME.py:run(cfg)."""

    def command(params: ParamsOption = DEFAULT_PARAMS) -> None:
        stage = importlib.import_module(f"pipelines.{name}")
        cfg = _config(params)
        _run(lambda: stage.run(cfg))

    command.__doc__ = help_text
    app.command(name=name)(command)


for _name, _help in STAGES.items():
    _stage_command(_name, _help)


@app.command()
def validate(
    params: ParamsOption = DEFAULT_PARAMS,
    data: Annotated[
        Path | None, typer.Option(help="check this contract directory instead (writes no tables)")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="with --data: write the validation report (JSON) here")
    ] = None,
) -> None:
    """Stage `validate`: check data.dir against the contract; write typed tables and a report.

    With --data DIR: check DIR by params' rules, write only the report (--report FILE).
    """
    from pipelines import validate as stage

    if report is not None and data is None:
        raise typer.BadParameter("--report goes with --data (the stage writes its own report)")
    cfg = _config(params)
    if data is None:
        _run(lambda: stage.run(cfg))
    else:
        _run(lambda: stage.run_dir(cfg, data, report))


@app.command()
def features(
    params: ParamsOption = DEFAULT_PARAMS,
    data: Annotated[Path | None, typer.Option(help="contract directory (one-date mode)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (one-date mode)")] = None,
    out: Annotated[
        Path | None, typer.Option(help="output .parquet or .csv (one-date mode)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
) -> None:
    """Stage `features` over the snapshot grid, or with --data/--as-of/--out for one date."""
    from pipelines import features as stage

    cfg = _config(params)
    one_date = (data, as_of, out)
    if any(v is not None for v in one_date):
        if any(v is None for v in one_date):
            raise typer.BadParameter("one-date mode needs --data, --as-of and --out together")
        _run(lambda: stage.run_as_of(cfg, data, _as_of_date(as_of), out, overwrite))
    else:
        _run(lambda: stage.run(cfg))


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="registered model: tierwise-churn or tierwise-tier")],
    version: Annotated[str, typer.Argument(help="model version to make the champion")],
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Set the `champion` alias of a registered model by hand (MLFLOW_TRACKING_URI or mlruns.db)."""
    from models.serving import registry

    cfg = _config(params)
    try:
        registry.promote(cfg.root, name, version)
    except registry.RegistryError as err:
        err_console.print(f"[bold red]not found[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    err_console.print(f"{name} version {version} is now the champion", highlight=False)


@app.command()
def plan(
    data: Annotated[Path, typer.Option(help="contract directory with a campaigns table")],
    as_of: Annotated[str, typer.Option("--as-of", help="YYYY-MM-DD: plan as of this day")],
    budget: Annotated[float, typer.Option(help="total cost the plan may spend")],
    out: Annotated[Path, typer.Option(help="output .parquet or .csv")],
    params: ParamsOption = DEFAULT_PARAMS,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    model: Annotated[
        str,
        typer.Option(
            help="uplift model URI (default: the registered champion), or 'fit' to fit the "
            "T-learner on the campaigns known at --as-of"
        ),
    ] = "models:/tierwise-uplift@champion",
    ignore_task: Annotated[
        bool, typer.Option("--ignore-task", help="serve a model of another task (a warning)")
    ] = False,
) -> None:
    """The budgeted action plan: whom to treat with which strategy (docs/uplift.md)."""
    from models.serving.registry import RegistryError
    from models.serving.task import TaskMismatchError
    from pipelines import plan as stage

    cfg = _config(params)
    try:
        _run(lambda: stage.run_plan(cfg, data, _as_of_date(as_of), budget, out, overwrite,
                                    model, ignore_task))  # fmt: skip
    except (RegistryError, TaskMismatchError) as err:
        err_console.print(f"[bold red]model[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err


def main() -> None:  # pragma: no cover - console entry point
    app()


# --- `tierwise score` (issue 5; docs/scoring.md) -------------------------------------------------
class ScoreEngine(StrEnum):
    pandas = "pandas"
    spark = "spark"


class ExplainPolicy(StrEnum):
    all = "all"
    at_risk = "at_risk"
    watch = "watch"
    none = "none"


@app.command()
def score(
    data: Annotated[
        str, typer.Option(help="contract directory with the portfolio's tables (spark: a URI)")
    ],
    as_of: Annotated[str, typer.Option("--as-of", help="YYYY-MM-DD: score customers known then")],
    out: Annotated[
        str, typer.Option(help="output .parquet or .csv file (spark: .parquet, also a URI)")
    ],
    churn_model: Annotated[
        str | None, typer.Option(help="churn model URI (default: models:/tierwise-churn@champion)")
    ] = None,
    tier_model: Annotated[
        str | None, typer.Option(help="tier model URI (default: models:/tierwise-tier@champion)")
    ] = None,
    survival_model: Annotated[
        str | None,
        typer.Option(help="survival model URI (default: the tierwise-survival champion if any)"),
    ] = None,
    engine: Annotated[ScoreEngine, typer.Option(help="feature and model engine")] = (
        ScoreEngine.pandas
    ),
    master: Annotated[str, typer.Option(help="Spark master URL (--engine spark)")] = "local[*]",
    conf: Annotated[
        list[str] | None,
        typer.Option(help="a Spark setting KEY=VALUE (--engine spark; repeat for more)"),
    ] = None,
    explain: Annotated[
        ExplainPolicy | None,
        typer.Option(help="who gets TreeSHAP reasons (default: params score.explain)"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    monitor: Annotated[
        bool, typer.Option("--monitor", help="also write the monitor JSON beside --out")
    ] = False,
    ignore_task: Annotated[
        bool, typer.Option(help="score with models of another task than params' (a warning)")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(help="processes for the slices (pandas engine; default 2, at most the CPUs)"),
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Score every customer known at --as-of with the registered churn and tier models.

    One row per customer: states, churn probability, risk band, reasons, strategies, next-tier
    probabilities and each model's name and version. Exit codes: 2 invalid data, params, model
    or request; 3 --out exists without --overwrite.
    """
    from models.serving.registry import RegistryError
    from models.serving.score import IncompatibleModelError
    from models.serving.task import TaskMismatchError
    from pipelines import score as stage

    cfg = _config(params)
    uris = {"churn_model": churn_model, "tier_model": tier_model}
    request = stage.ScoreRequest(
        data_dir=data if stage.is_uri(data) else Path(data),
        as_of=_as_of_date(as_of),
        out=out,
        **{option: uri for option, uri in uris.items() if uri is not None},
        engine=engine.value,
        master=master,
        spark_conf=stage.parse_conf(conf or []),
        explain=explain.value if explain else None,
        overwrite=overwrite,
        monitor=monitor,
        ignore_task=ignore_task,
        survival_model=survival_model,
        workers=workers,
    )
    try:
        _run(lambda: stage.run(cfg, request))
    except (RegistryError, IncompatibleModelError, stage.ScoreError, TaskMismatchError) as err:
        err_console.print(f"[bold red]cannot score[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err


# --- `tierwise monitor` (issue 13; docs/monitoring.md) -------------------------------------------
EXIT_RETRAIN = 4  # the monitor's verdict is retrain (ok and warn exit 0)


@app.command()
def monitor(
    data: Annotated[Path | None, typer.Option(help="contract directory (one-date mode)")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD: monitor the book then")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="the report, a .json file")] = None,
    reference: Annotated[
        str | None,
        typer.Option(help="YYYY-MM-DD: compare with the book then (default: the model's profile)"),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="churn model URI (default: models:/tierwise-churn@champion)")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="also write a self-contained HTML page")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace existing outputs")] = False,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Drift, data quality, label-free performance estimates, the realised backtest and a verdict.

    Without --data/--as-of/--out: the DVC stage `monitor` (the test snapshots against the
    training window, as DVC metrics in paths.monitor).

    Exit codes: 0 ok or warn; 4 retrain; 2 invalid data, params, model or request; 3 an output
    exists without --overwrite.
    """
    from models.serving.registry import RegistryError
    from pipelines import monitor as stage

    cfg = _config(params)
    if data is None and as_of is None and out is None:
        _run(lambda: stage.run_stage(cfg))
        return
    if data is None or as_of is None or out is None:
        raise typer.BadParameter("monitoring one date needs --data, --as-of and --out together")
    request = stage.MonitorRequest(
        data_dir=data,
        as_of=_as_of_date(as_of),
        out=out,
        reference=_as_of_date(reference) if reference else None,
        **({"model": model} if model else {}),
        html=html,
        overwrite=overwrite,
    )
    found: dict = {}
    try:
        _run(lambda: found.setdefault("report", stage.run(cfg, request)))
    except (RegistryError, stage.MonitorError) as err:
        err_console.print(f"[bold red]cannot monitor[/] {err}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from err
    report = found["report"]
    err_console.print(f"verdict {report['verdict']}: " + "; ".join(report["reasons"]),
                      highlight=False)  # fmt: skip
    if stage.is_retrain(report):
        raise typer.Exit(EXIT_RETRAIN)
