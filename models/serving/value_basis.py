"""The survival curve a plan values its customers on: the ``tierwise-survival`` champion's.

``survival_basis`` scores the book with the survival champion through pyfunc, as a consumer
would, and returns its answer (the uplift stage's churn causes read it) and the plan's
``ValueBasis`` (models/uplift/plan.py). The basis is the champion's monthly all-cause survival
curve when the champion answers the survival task of params (so its months are params'
``survival.events``) and, for a plan dated ``as_of``, records a training end on or before it
(point in time); otherwise it is the geometric CLV, and the reason is logged and kept. The
uplift stage and `tierwise plan` (both model paths) value on it (docs/uplift.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.spec import Definitions, EventSpec
from models.serving import registry
from models.serving.task import Task, train_data_end
from models.survival.train import survival_column
from models.uplift.plan import ValueBasis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SurvivalAnswer:
    basis: ValueBasis
    output: pd.DataFrame | None  # the champion's answer, one row per book row (None: no answer)


def survival_basis(
    root: Path,
    book: pd.DataFrame,
    defs: Definitions,
    events: EventSpec,
    as_of: pd.Timestamp | None = None,
) -> SurvivalAnswer:
    """The survival champion's answer for the ``book`` rows and the value basis it gives (see
    the module docstring); ``as_of``: the plan's date, checked against the version's
    ``train_data_end`` (None: not checked, a plan of the data the champion was trained on)."""
    name = registry.MODEL_NAMES["survival"]
    answer = registry.score_with_alias(root, name, registry.CHAMPION, book)
    if answer is None or answer.output is None:
        why = f"no {name} champion" if answer is None else answer.error
        return _geometric(why, None)
    keys = [CUSTOMER_ID, AS_OF]
    output = book[keys].merge(answer.output, on=keys, how="left")
    where = f"{name} version {answer.version}"
    tags = registry.version_tags(root, name, answer.version)
    task = Task.of_survival(defs, events)
    held = Task.from_tags(tags)
    if held != task:
        why = f"{where} answers task {held.id if held else '(none recorded)'}, params' is {task.id}"
        return _geometric(why, output)
    end = train_data_end(tags)
    if as_of is not None and (end is None or end > as_of):
        seen = (
            "records no training end" if end is None else f"was trained on data to {end:%Y-%m-%d}"
        )
        return _geometric(f"{where} {seen}: not a point-in-time curve at {as_of:%Y-%m-%d}", output)
    columns = [survival_column(k) for k in range(1, events.months + 1)]
    missing = [c for c in columns if c not in output.columns]
    curve = None if missing else output[columns].to_numpy(float)
    if curve is None or pd.isna(curve).any():
        what = f"no {missing[0]}" if missing else "no curve for some book rows"
        return _geometric(f"{where} answers {what}", output)
    log.info("plan values on the survival-weighted CLV of %s", where)
    return SurvivalAnswer(ValueBasis(curve, events.month_days, f"the curve of {where}"), output)


def _geometric(why: str, output: pd.DataFrame | None) -> SurvivalAnswer:
    log.warning("plan values on the geometric CLV: %s", why)
    return SurvivalAnswer(ValueBasis(reason=why), output)
