"""The oracle of churn time and cause (features.synthetic.oracle_incidence): a replica on the
world's own random stream replays the churn month and cause that features/events.py reads off
the exported tables, and the oracle's all-cause incidence at K is oracle_churn's at K months."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd

import features.synthetic as fs
from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS, compute_events
from features.spec import CAUSES
from pipelines.config import load_defaults

CFG = load_defaults()
_OFF = dataclasses.replace(CFG.generate.campaigns, start="")
BASE = dataclasses.replace(CFG.generate, customers=900, years=3, start="2021-01-01", seed=17,
                           campaigns=_OFF)  # fmt: skip
EVENTS = CFG.survival.events


def test_a_replica_on_the_worlds_own_stream_replays_churn_time_and_cause():
    sim = fs._new_sim(BASE, keep_monthly=False)
    months = fs._run(sim)
    t = next(m for m in months if m == 17)  # June 2022: 12 months of world after it
    everyone, bar = np.arange(len(sim.c["L"])), fs.world_bars(BASE)
    replica = fs._replica(sim, bar, everyone, 1, copy.deepcopy(sim.rng))
    as_of = pd.Timestamp(sim.month_ns[t + 1]) - pd.Timedelta(days=1)
    offsets = np.array(EVENTS.month_ends())
    counts = fs._replay_causes(replica, len(everyone), t, as_of.value, offsets)
    for _ in months:  # the world goes on from where the replica started
        pass
    ids = pd.Series(fs._customer_ids(sim))
    tables = fs._tables(sim, fs._customer_ids(sim))
    end = pd.Timestamp(sim.month_ns[-1]) - pd.Timedelta(days=1)
    realised = compute_events(tables, ids, pd.Series(as_of, index=ids.index), CFG.defs, EVENTS, end)
    active = realised[SURV_MONTHS].notna().to_numpy()
    churned = counts[:, -1, :].sum(axis=1) == 1
    assert realised.loc[active, SURV_EVENT].sum() > 20
    assert (churned[active] == (realised.loc[active, SURV_EVENT] == 1).to_numpy()).all()
    hit = active & churned
    month = np.argmax(counts[hit].sum(axis=2) > 0, axis=1) + 1
    assert (month == realised.loc[hit, SURV_MONTHS].to_numpy()).all()
    cause = np.array(CAUSES, dtype=object)[counts[hit, -1, :].argmax(axis=1)]
    assert (cause == realised.loc[hit, SURV_CAUSE].to_numpy()).all()
    assert len(set(cause)) >= 3  # the causes, not one of them


def test_the_oracles_all_cause_incidence_at_k_is_oracle_churn_at_k_months():
    sim = fs._new_sim(BASE, keep_monthly=False)
    ids = fs._customer_ids(sim)
    rows = pd.DataFrame({"customer_id": ids[:300], "as_of": pd.Timestamp("2022-06-30")})
    rows = pd.concat([rows, rows.assign(as_of=pd.Timestamp("2022-09-30"))], ignore_index=True)
    incidence = fs.oracle_incidence(BASE, rows, EVENTS, replicates=40, seed=3)
    assert incidence.shape == (600, EVENTS.months, len(CAUSES))
    assert (np.diff(incidence, axis=1) >= 0).all() and (incidence.sum(axis=2) <= 1).all()
    churn = fs.oracle_churn(BASE, rows, EVENTS.month_ends()[-1], replicates=40, seed=3)
    np.testing.assert_allclose(incidence[:, -1, :].sum(axis=1), churn)
