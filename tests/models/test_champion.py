"""models/evaluation/champion.py and models/serving/task.py: like with like. A challenger is
compared only with a champion of its own task, another task never takes the plain champion
alias, and a task is told apart by its horizon, active window and definitions."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from models.evaluation.champion import (
    ChampionAnswer,
    Decision,
    Holder,
    decide_for_task,
    without_promotion,
)
from models.serving.task import Task, TaskMismatchError, check_task, fingerprint_test_set

T180, T90 = "h180-a365-l1-aaaa", "h90-a365-l1-aaaa"


def _decide(calls: list):
    """A stand-in for decide_promotion that records whom it was asked to compare with."""

    def decide(answer: ChampionAnswer | None) -> Decision:
        calls.append(None if answer is None else answer.version)
        return Decision(True, "beats it") if answer else Decision(True, "no champion yet")

    return decide


def test_the_first_version_takes_both_aliases():
    decision = decide_for_task(T180, None, None, _decide(calls := []))
    assert decision.promote and decision.takes_task_alias and calls == []


def test_same_task_is_compared_and_may_take_champion():
    answer = ChampionAnswer("1", pd.DataFrame())
    decision = decide_for_task(T180, Holder("1", T180), answer, _decide(calls := []))
    assert calls == ["1"] and decision.promote and decision.takes_task_alias


@pytest.mark.parametrize("held_task", [T180, None])
def test_another_task_never_takes_champion_even_when_it_would_win(held_task):
    own = ChampionAnswer("4", pd.DataFrame())  # the champion of the 90-day task
    decision = decide_for_task(T90, Holder("1", held_task), own, _decide(calls := []))
    assert calls == ["4"]  # compared with its own task's champion only
    assert not decision.promote and decision.takes_task_alias
    assert (
        "not compared" in decision.reason and f"this version is for task {T90}" in decision.reason
    )
    if held_task is None:
        assert "records no task" in decision.reason


def test_an_experiment_moves_no_alias():
    decision = without_promotion(Decision(True, "beats champion v1"), "an experiment")
    assert not decision.promote and not decision.takes_task_alias
    assert decision.reason == "beats champion v1; not promoted: an experiment"


def test_a_task_changes_with_horizon_window_and_definitions(defs):
    base = Task.of(defs)
    assert base.id.startswith(f"h{defs.horizon_days}-a{defs.active_window_days}-l1-")
    assert Task.from_tags(base.to_tags()) == base
    for change in ({"horizon_days": 90}, {"active_window_days": 200}, {"vip_top_fraction": 0.2}):
        assert Task.of(dataclasses.replace(defs, **change)) != base, change
    assert Task.of(dataclasses.replace(defs, horizon_days=90)).differences(base) == [
        f"label.horizon_days is 90 for the model but {defs.horizon_days} in params"
    ]
    assert Task.from_tags({"promotion": "by hand"}) is None


def test_the_pyfunc_guard_names_both_values():
    task = {"label.horizon_days": "180", "label.active_window_days": "365"}
    check_task(task, {"horizon_days": "180", "explain": "none"})
    check_task(task, {"horizon_days": "", "active_window_days": ""})  # not asked: not checked
    check_task(None, {"horizon_days": "90"})  # a version without a task: nothing to check
    with pytest.raises(TaskMismatchError, match="label.horizon_days=180 .* horizon_days=90"):
        check_task(task, {"horizon_days": "90"})


def test_the_test_set_fingerprint_depends_on_the_rows_not_their_order():
    rows = pd.DataFrame({"customer_id": ["A", "B"], "as_of": pd.to_datetime(["2022-01-31"] * 2)})
    assert fingerprint_test_set(rows) == fingerprint_test_set(rows.iloc[::-1])
    assert fingerprint_test_set(rows) != fingerprint_test_set(rows.head(1))
