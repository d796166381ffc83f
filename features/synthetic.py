"""The built-in synthetic world: a causal simulation of a bank's business-lending book.

``generate_world(spec)`` (params.yaml's ``generate:``) returns the five contract tables, and a
sixth, ``campaigns``, when ``spec.campaigns`` is on (retention campaigns with control groups and
true effects: ``_campaigns``/``_treat``; ``oracle_uplift`` and ``simulate_policies`` measure them
by re-simulation). A latent
loyalty per customer, evolving month by month, drives what the tables show (conversion of
prospects, renewals, new projects, churn, referrals, complaints, punctuality, survey answers), so
a model trained on the tables has something true to learn. docs/synthetic-world.md tells the
causal story.

Pure: no I/O, and the same spec always gives the same tables. Only the months are a Python loop;
inside a month everything is vectorised over customers and loans. The simulator's private state
(``_Sim``) is updated in place for speed; nothing outside this module ever sees it.

Layout: spec and its checks; the month loop ``_run`` and the monthly step ``_step`` (arrivals and
state changes, originations with their loan shapes ``_draw_kinds``/``_shape_terms``, tiers,
payments, interactions, surveys, loyalty); state to contract tables (``_tables``, then
``extract_tables`` when ``extract_start`` is set); latent truth; and the oracle
(``oracle_churn``), which steps copies of customers through the same ``_step``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features import contract as ct
from features.spec import CAUSES, EventSpec

SEGMENTS = ("sme", "corporate", "project_sponsor")
PRODUCTS = ("working_capital", "term_loan", "trade_finance", "equipment", "project_finance")
INDUSTRIES = ("manufacturing", "wholesale_trade", "construction", "agriculture", "logistics",
              "technology", "energy", "real_estate")  # fmt: skip
REGIONS = ("north", "south", "east", "west", "central")
STATES = ("pending", "prospect", "active", "drifting", "churned", "cold")
EVENTS = ("convert", "drift", "churn", "winback", "write_off")
_PENDING, _PROSPECT, _ACTIVE, _DRIFTING, _CHURNED, _COLD = range(len(STATES))
_DAY, _SEC = np.int64(86_400 * 10**9), np.int64(10**9)

# Per segment (SEGMENTS order).
_SEG_LOG_PRINCIPAL = np.log([250e3, 3e6, 20e6])  # median principal
_SEG_RM = np.array([0.05, 0.16, 0.25])  # relationship-manager contacts a month
_SEG_PROJECT = np.array([0.014, 0.022, 0.028])  # monthly chance of a new project at loyalty 0
_SEG_SPREAD = np.array([0.010, 0.0, 0.005])
_SEG_LOYALTY = np.array([0.0, 0.1, 0.2])
_SEG_PRODUCT_P = np.array([[0.45, 0.25, 0.10, 0.20, 0.0], [0.30, 0.30, 0.30, 0.10, 0.0],
                           [0.05, 0.20, 0.0, 0.05, 0.70]])  # fmt: skip
_SEG_INDUSTRY_P = np.array([[0.25, 0.22, 0.12, 0.10, 0.12, 0.12, 0.02, 0.05],
                            [0.25, 0.15, 0.12, 0.05, 0.10, 0.13, 0.10, 0.10],
                            [0.02, 0.00, 0.25, 0.03, 0.05, 0.05, 0.35, 0.25]])  # fmt: skip
_REGION_P = np.array([0.20, 0.25, 0.25, 0.12, 0.18])
_REGION_LOYALTY = np.array([0.0, 0.05, -0.15, 0.10, 0.0])  # the east is the most contested
# Per product (PRODUCTS order): spread over market, size factor, terms, renewal logit.
_PRODUCT_SPREAD = np.array([0.020, 0.025, 0.015, 0.022, 0.030])
_PRODUCT_SIZE = np.array([0.7, 1.0, 0.6, 0.5, 3.0])
_PRODUCT_TERMS = np.array([[6, 12, 12, 24], [24, 36, 48, 60], [6, 6, 9, 12], [24, 36, 48, 60],
                           [36, 48, 60, 60]])  # fmt: skip
_PRODUCT_RENEW = np.array([1.0, -1.0, 1.0, -1.2, -1.0])
# Interaction types: a kind each, and a distribution over KNOWN_CHANNELS (visit call email event
# online) from which each interaction's channel is drawn.
_RM_VISIT, _RM_CALL, _MARKETING, _EVENT, _ONLINE, _INQUIRY, _COMPLAINT, _REFERRAL = range(8)
_ITYPE_KIND = np.array([ct.KNOWN_KINDS.index(k) for k in ("service", "service", "marketing",
                        "event", "service", "inquiry", "complaint", "referral")])  # fmt: skip
_ITYPE_CHANNEL_P = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0],
                             [0, 0, 0, 0, 1], [0.15, 0.35, 0.25, 0, 0.25],
                             [0.10, 0.45, 0.30, 0, 0.15], [0.40, 0.30, 0.15, 0.15, 0]])  # fmt: skip
# Repayment structures (the book's ``kind``): annuity, bullet (interest only, principal at
# maturity) and revolving (a yearly-reviewed credit line: interest only, renewed at each review).
_ANNUITY, _BULLET, _REVOLVING = range(3)
_BULLET_PRODUCTS = np.array([PRODUCTS.index("term_loan"), PRODUCTS.index("project_finance")])
_REVOLVING_PRODUCT, _LONG_PRODUCT = (
    PRODUCTS.index("working_capital"),
    PRODUCTS.index("project_finance"),
)
_LONG_TERMS = np.array([120, 144, 180])  # project-finance maturities of 10–15 years
_REVOLVING_TERM = 12  # a credit line is reviewed and renewed once a year
_REVOLVING_RENEW = 2.0  # extra renewal logit of a credit line at its review
_REVOLVING_LABEL = "credit_line"  # its product in the loans table
_BOOK = (
    "cust",
    "product",
    "orig_m",
    "day",
    "term",
    "close_m",
    "principal",
    "rate",
    "kind",
    "reason",
    "miss",
)
_EMPTY_BOOK = {k: np.zeros(0, float if k in ("principal", "rate") else np.int64) for k in _BOOK}
# Retention campaigns (docs/synthetic-world.md, "Campaigns"): the strategies the bank runs, by
# catalog id (models/strategies/strategies.yaml), and the flat cost of one treatment (the price
# review costs the interest it gives up instead: see _treat).
CAMPAIGN_STRATEGIES = ("competitor_counter", "regular_follow_up", "prompt_response",
                       "active_dedicated_credit", "enhance_interaction")  # fmt: skip
_PRICE_REVIEW, _RM_FOLLOW_UP, _SERVICE_RECOVERY, _RENEWAL_OFFER, _EMAIL_TOUCH = range(5)
_CAMPAIGN_COST = np.array([300.0, 2_000.0, 1_000.0, 500.0, 50.0])
_PRICE_CUT = 0.75  # share of the price gap a price review gives back
_OFFER_MONTHS = 4  # a renewal offer covers maturities in the month of the offer and 3 more
_OFFER_LOGIT = 2.0  # renewal logit added by a standing renewal offer
# Why a loan closed early (book "reason"; a close at maturity is "matured" whatever the code).
_MATURED, _REFINANCED, _WRITTEN_OFF = range(3)


@dataclass(frozen=True)
class DriftSpec:
    """Drift scenarios switched on from a date, for monitoring (docs/monitoring.md). Off when
    ``start`` is empty; each switch is applied by one function (``_apply_*``) and leaves the
    world before ``start`` exactly as it was."""

    start: str  # YYYY-MM-DD from which the switches act; "" = no drift
    rate_shock: float  # added to the market rate from `start` (-0.02: price gaps widen by 2 pts)
    segment_mix: tuple[float, ...]  # SEGMENTS shares of customers arriving from `start`; () = as is
    principal_thousands: bool  # data fault: principal of loans from `start` recorded in thousands
    channel_rename: tuple[str, ...]  # data fault: ("call", "phone"): "call" recorded as "phone"

    def __post_init__(self) -> None:
        if self.segment_mix and (
            len(self.segment_mix) != len(SEGMENTS) or abs(sum(self.segment_mix) - 1) > 1e-9
            or min(self.segment_mix) < 0
        ):  # fmt: skip
            raise ValueError(f"drift.segment_mix: {len(SEGMENTS)} shares summing to 1 {SEGMENTS}")
        if self.channel_rename and len(self.channel_rename) != 2:
            raise ValueError("drift.channel_rename: [old, new] or []")
        if self.start:
            pd.Timestamp(self.start)  # a bad date fails here

    @property
    def on(self) -> bool:
        return bool(self.start)


@dataclass(frozen=True)
class CampaignSpec:
    """Retention campaigns the simulated bank runs each month from ``start``
    (docs/synthetic-world.md, "Campaigns"). Off when ``start`` is empty: the world is then the
    world without campaigns, number for number (campaigns draw from their own random stream)."""

    start: str  # YYYY-MM-DD of the first campaign; "" = no campaigns
    monthly_share: float  # share of eligible borrowers the bank's rule selects each month
    control_share: float  # share of the selected kept as a randomised control group
    cooldown_months: int  # months before a selected customer can be selected again

    def __post_init__(self) -> None:
        if not (0.0 < self.monthly_share <= 1.0 and 0.0 < self.control_share < 1.0):
            raise ValueError("campaigns: monthly_share in (0, 1], control_share in (0, 1)")
        if self.cooldown_months < 0:
            raise ValueError("campaigns: cooldown_months must be >= 0")
        if self.start:
            pd.Timestamp(self.start)  # a bad date fails here

    @property
    def on(self) -> bool:
        return bool(self.start)


@dataclass(frozen=True)
class WorldSpec:
    """What to simulate. No defaults: params.yaml's ``generate:`` gives the world in the docs."""

    customers: int  # everyone who ever appears: borrowers and prospects
    years: int
    start: str  # first day; the world ends the day before start + years
    seed: int
    prospect_share: float  # customers who arrive as prospects (Aware), not as borrowers
    initial_share: float  # customers arriving in the first `ramp_months`: the initial book
    ramp_months: int
    churn_logit: float  # logit of the monthly drift-away hazard at loyalty 0, no risk signal
    drift_months: float  # mean extra months a drifting customer shows signals before leaving
    prepay_share: float  # churners who refinance their open loans elsewhere (early close)
    winback_rate: float  # monthly chance that a churned customer comes back
    survey_response: float  # response probability to the yearly survey at loyalty 0
    item_nonresponse: float  # share of survey answers left blank
    noise_share: float  # random interactions (any channel, any kind) per real one
    segment_shares: tuple[float, ...]  # customers per segment (SEGMENTS order), summing to 1
    long_maturity_share: float  # project-finance loans with a 10–15-year maturity
    bullet_share: float  # term and project-finance loans repaid at maturity (interest only)
    revolving_share: float  # working-capital loans that are credit lines renewed yearly
    arrears_persistence: float  # logit added to a miss when the previous installment was missed
    writeoff_missed: int  # consecutive missed installments after which a loan is written off
    close_reason: bool  # export loans.close_reason (matured, refinanced, written_off)
    drift: DriftSpec  # drift scenarios from a date (off by default)
    campaigns: CampaignSpec  # retention campaigns with control groups (params: from 2021-06-30)
    extract_start: str  # "" = the whole history; else export what a bank's extract from then holds

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def end(self) -> pd.Timestamp:
        """The last simulated day."""
        return pd.Timestamp(self.start) + pd.DateOffset(years=self.years) - pd.Timedelta(days=1)


@dataclass(frozen=True)
class Latent:
    """The hidden variables behind the tables, for tests and docs (never for models)."""

    customers: pd.DataFrame  # customer_id, prospect, base_loyalty, price_sensitivity, fragility…
    events: pd.DataFrame  # customer_id, event (one of EVENTS), month
    market: pd.DataFrame  # month, market_rate
    monthly: pd.DataFrame | None  # customer_id, month, loyalty, state (with keep_monthly only)


@dataclass(frozen=True)
class World:
    tables: ct.Tables
    latent: Latent


def generate_world(spec: WorldSpec) -> ct.Tables:
    """The contract tables of the synthetic world described by ``spec`` (campaigns: when on)."""
    return simulate_world(spec).tables


def simulate_world(spec: WorldSpec, keep_monthly: bool = False) -> World:
    """Tables plus latent truth; ``keep_monthly`` adds every customer's loyalty and state by month
    (n_customers x months rows: meant for small worlds). With ``spec.extract_start`` the tables
    are the extract (``extract_tables``); the latent truth covers the whole simulation."""
    _check_spec(spec)
    sim = _new_sim(spec, keep_monthly)
    for _ in _run(sim):
        pass
    cid = _customer_ids(sim)
    tables = _apply_data_faults(_tables(sim, cid), spec.drift)
    if spec.extract_start:
        tables = extract_tables(tables, _day(spec.extract_start))
    return World(tables=tables, latent=_latent(sim, cid))


def _run(sim: _Sim) -> Iterator[int]:
    """Step the world month by month, yielding each month once its step is done (the generator
    and the oracle share this loop)."""
    for t in range(sim.months):
        _step(sim, t)
        yield t


def _customer_ids(sim: _Sim) -> np.ndarray:
    """Ids by arrival order; known from the first month (arrivals are drawn up front)."""
    return _ids("C", _rank(sim.c["arrive"], sim.c["onboard_day"]) + 1, 7)


def extract_tables(tables: ct.Tables, first_day: pd.Timestamp) -> ct.Tables:
    """What a bank's extract taken from ``first_day`` on holds (left-truncated history).

    Loans closed before ``first_day`` are gone; loans open on it keep their true origination
    date. Repayments (by due date), interactions and surveys start on ``first_day``. Customers are
    those that any exported row names; their onboarding dates are kept.
    """
    loans = tables.loans
    loans = loans[loans[ct.CLOSED_DATE].isna() | (loans[ct.CLOSED_DATE] >= first_day)]
    rep, inter, surv = tables.repayments, tables.interactions, tables.surveys
    rep = rep[rep[ct.LOAN_ID].isin(loans[ct.LOAN_ID]) & (rep[ct.DUE_DATE] >= first_day)]
    inter = inter[inter[ct.TIMESTAMP] >= first_day]
    surv = surv[surv[ct.SURVEY_DATE] >= first_day]
    named = pd.concat([loans[ct.CUSTOMER_ID], inter[ct.CUSTOMER_ID], surv[ct.CUSTOMER_ID]])
    customers = tables.customers[tables.customers[ct.CUSTOMER_ID].isin(named)]
    parts = dict(loans=loans, customers=customers, repayments=rep, interactions=inter,
                 surveys=surv)  # fmt: skip
    if tables.campaigns is not None:
        camp = tables.campaigns
        kept = (camp[ct.CAMPAIGN_DATE] >= first_day) & camp[ct.CUSTOMER_ID].isin(
            customers[ct.CUSTOMER_ID]
        )
        parts["campaigns"] = camp[kept]
    return ct.Tables(**{name: df.reset_index(drop=True) for name, df in parts.items()})


def _check_spec(spec: WorldSpec) -> None:
    if spec.customers < 1 or spec.years < 1 or spec.ramp_months < 1:
        raise ValueError(f"customers, years and ramp_months must be positive: {spec}")
    shares = (spec.prospect_share, spec.initial_share, spec.prepay_share, spec.winback_rate,
              spec.item_nonresponse, spec.noise_share, spec.long_maturity_share,
              spec.bullet_share, spec.revolving_share)  # fmt: skip
    if not all(0.0 <= s <= 1.0 for s in shares) or not 0.0 < spec.survey_response < 1.0:
        raise ValueError(f"shares must lie in [0, 1], survey_response in (0, 1): {spec}")
    if spec.writeoff_missed < 1 or spec.arrears_persistence < 0:
        raise ValueError(f"writeoff_missed must be >= 1, arrears_persistence >= 0: {spec}")
    _check_segments(spec.segment_shares)
    if spec.extract_start and not pd.Timestamp(spec.start) < _day(spec.extract_start) <= spec.end:
        raise ValueError(
            f"extract_start {spec.extract_start} must lie after start {spec.start} and on or "
            f"before the last simulated day {spec.end.date()} (empty: no extract)"
        )


def _check_segments(shares: tuple[float, ...]) -> None:
    values = np.asarray(shares, dtype=float)
    if len(values) != len(SEGMENTS) or (values < 0).any() or not np.isclose(values.sum(), 1.0):
        raise ValueError(
            f"segment_shares must be {len(SEGMENTS)} non-negative shares ({', '.join(SEGMENTS)})"
            f" summing to 1, got {list(shares)}"
        )


def _day(text: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(text).normalize()
    except ValueError as err:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from err


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _choice_rows(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One categorical draw per row of the probability matrix ``p``."""
    u = rng.random(len(p))[:, None]
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)


@dataclass
class _Sim:
    """Private, mutable simulation state: per-customer arrays, the loan book, emitted rows."""

    spec: WorldSpec
    rng: np.random.Generator
    months: int
    month_ns: np.ndarray  # first instant of each month, and of the month after the end
    market: np.ndarray  # market rate by month
    stress: np.ndarray  # financial stress, industry x month
    c: dict[str, np.ndarray]  # per-customer arrays
    book: dict[str, np.ndarray] = field(default_factory=lambda: dict(_EMPTY_BOOK))
    n_loans: int = 0
    out: dict[str, list[dict[str, np.ndarray]]] | None = field(default_factory=dict)
    monthly: list[tuple[np.ndarray, np.ndarray]] | None = None
    top: np.ndarray | None = None  # the VIP exposure bar by month (recorded by the world)
    cut: np.ndarray | None = None  # the bank's campaign selection bar (its rule's score) by month
    replica: bool = False  # an oracle replica: emits nothing, reads the world's bars
    crng: np.random.Generator | None = None  # the campaigns' own stream (world only)
    forced: tuple[int, np.ndarray] | None = None  # a replica's treatment: (month, strategy per
    # customer, -1 = none), applied at the start of that month instead of the bank's rule
    month_seeds: np.ndarray | None = None  # paired replicas: a fresh stream each month from these

    def emit(self, table: str, **cols: np.ndarray) -> None:
        if self.out is not None:
            self.out.setdefault(table, []).append(cols)

    def loans(self, name: str) -> np.ndarray:
        return self.book[name][: self.n_loans]


def _new_sim(spec: WorldSpec, keep_monthly: bool) -> _Sim:
    rng = np.random.default_rng(spec.seed)
    months = 12 * spec.years
    start = pd.Timestamp(spec.start).normalize()
    month_ns = np.array([(start + pd.DateOffset(months=k)).value for k in range(months + 1)])
    market, stress = _market_path(rng, months), _industry_stress(rng, months)
    customers = _draw_customers(spec, rng, months)
    if spec.drift.on:
        first = int(np.searchsorted(month_ns, pd.Timestamp(spec.drift.start).value))
        market = _apply_rate_shock(market, spec.drift, first)
        _apply_segment_mix(customers, spec, first)
    return _Sim(spec, rng, months, month_ns.astype(np.int64), market, stress, customers,
                monthly=[] if keep_monthly else None, top=np.full(months, np.inf),
                cut=np.full(months, np.inf),
                crng=np.random.default_rng([spec.seed, 14]))  # fmt: skip


def _market_path(rng: np.random.Generator, months: int) -> np.ndarray:
    """A smooth random walk with momentum, squashed into 3–7 % around 5 %."""
    level, velocity, path = rng.normal(0.0, 0.5), 0.0, np.empty(months)
    for t, shock in enumerate(rng.normal(0.0, 0.05, months)):
        velocity = 0.85 * velocity + shock
        level = 0.95 * level + velocity
        path[t] = 0.05 + 0.02 * np.tanh(level)
    return path


def _apply_rate_shock(market: np.ndarray, drift: DriftSpec, first: int) -> np.ndarray:
    """Drift: the market rate moves by ``rate_shock`` from month ``first`` on (a cut widens the
    gap between what existing borrowers pay and what the market offers)."""
    shocked = market.copy()
    shocked[first:] = np.maximum(shocked[first:] + drift.rate_shock, 0.005)
    return shocked


def _apply_segment_mix(c: dict, spec: WorldSpec, first: int) -> None:
    """Drift: customers arriving from month ``first`` on come in ``segment_mix`` (their industry
    and loyalty follow the new segment). Own random stream: the main one is untouched."""
    if not spec.drift.segment_mix:
        return
    rng = np.random.default_rng([spec.seed, 13])
    late = np.flatnonzero(c["arrive"] >= first)
    seg = rng.choice(len(SEGMENTS), size=len(late), p=np.asarray(spec.drift.segment_mix))
    shift = _SEG_LOYALTY[seg] - _SEG_LOYALTY[c["seg"][late]]
    c["seg"][late], c["ind"][late] = seg, _choice_rows(rng, _SEG_INDUSTRY_P[seg])
    c["mu"][late] += shift
    c["L"][late] += shift


def _apply_data_faults(tables: ct.Tables, drift: DriftSpec) -> ct.Tables:
    """Drift at export: from ``start`` the principal is recorded in thousands and a channel is
    recorded under another name; the simulated world behind the tables is unchanged."""
    if not drift.on or not (drift.principal_thousands or drift.channel_rename):
        return tables
    start = pd.Timestamp(drift.start)
    loans, inter = tables.loans, tables.interactions
    if drift.principal_thousands:
        late = loans[ct.ORIGINATION_DATE] >= start
        loans = loans.assign(
            **{ct.PRINCIPAL: loans[ct.PRINCIPAL].where(~late, loans[ct.PRINCIPAL] / 1000)}
        )
    if drift.channel_rename and inter is not None:
        old, new = drift.channel_rename
        hit = (inter[ct.TIMESTAMP] >= start) & (inter[ct.CHANNEL] == old)
        inter = inter.assign(**{ct.CHANNEL: inter[ct.CHANNEL].where(~hit, new)})
    return replace(tables, loans=loans, interactions=inter)


def _industry_stress(rng: np.random.Generator, months: int) -> np.ndarray:
    """AR(1) financial stress per industry around a shared business cycle."""
    shocks = rng.normal(0.0, 0.25, (len(INDUSTRIES), months)) + rng.normal(0.0, 0.12, months)
    stress = np.zeros_like(shocks)
    for t in range(1, months):
        stress[:, t] = 0.85 * stress[:, t - 1] + shocks[:, t]
    return stress


def _draw_customers(spec: WorldSpec, rng: np.random.Generator, months: int) -> dict:
    """Static traits, arrival month, and the zeroed dynamic state of every customer."""
    n = spec.customers
    seg = rng.choice(len(SEGMENTS), size=n, p=spec.segment_shares)
    reg = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    early = rng.random(n) < spec.initial_share
    later = rng.integers(0, max(months - 2, 1), n)
    mu = rng.normal(_SEG_LOYALTY[seg] + _REGION_LOYALTY[reg], 0.7)
    c = dict(
        seg=seg, ind=_choice_rows(rng, _SEG_INDUSTRY_P[seg]), reg=reg,
        size=rng.lognormal(0.0, 0.5, n), sens=rng.beta(2.0, 3.0, n), frag=rng.normal(0.0, 1.0, n),
        premium=rng.normal(0.0, 0.004, n), mu=mu, L=mu + rng.normal(0.0, 0.4, n),
        prospect=rng.random(n) < spec.prospect_share,
        arrive=np.where(early, rng.integers(0, min(spec.ramp_months, months), n), later),
        onboard_day=rng.integers(0, 21, n), patience=6 + rng.exponential(12.0, n),
    )  # fmt: skip
    c |= {k: np.zeros(n) for k in ("eng", "rc", "rl", "inq", "n_open", "projects", "tier")}
    c |= {"state": np.zeros(n, np.int8), "drift_end": np.zeros(n, np.int64)}
    c |= {"first_m": np.full(n, -1), "last_rate": np.full(n, np.nan), "last_fair": np.zeros(n)}
    c |= {"rmr": np.zeros(n), "offer_until": np.full(n, -1), "camp_m": np.full(n, -(10**6))}
    return c


def _step(sim: _Sim, t: int) -> None:
    """One month: arrivals and state changes, loans, payments, interactions, surveys, loyalty."""
    c = sim.c
    _campaigns(sim, t)
    arrived = np.flatnonzero(c["arrive"] == t)
    c["state"][arrived] = np.where(c["prospect"][arrived], _PROSPECT, _ACTIVE)
    direct = arrived[~c["prospect"][arrived]]
    _originate(sim, t, np.concatenate([direct, _transitions(sim, t)]))
    _refresh_tiers(sim, t)
    late = _payments(sim, t)
    idx = np.flatnonzero(c["state"] != _PENDING)
    counts = _interactions(sim, t, idx)
    _surveys(sim, t)
    _update_loyalty(sim, t, idx, counts, late[idx])
    if sim.monthly is not None:
        sim.monthly.append((c["L"].astype(np.float32), c["state"].copy()))


def _price_gap(sim: _Sim, t: int, idx: np.ndarray) -> np.ndarray:
    """How far the customer's latest loan is priced above what the market offers today."""
    c = sim.c
    return np.nan_to_num(c["last_rate"][idx] - sim.market[t] - c["last_fair"][idx])


def _event(sim: _Sim, who: np.ndarray, event: str, t: int) -> None:
    n = len(who)
    sim.emit("events", cust=who, event=np.full(n, EVENTS.index(event)), t=np.full(n, t))


def _transitions(sim: _Sim, t: int) -> np.ndarray:
    """Drifting → churned, active → drifting, churned → back, prospect → borrower or cold.

    Returns the customers who need a first loan this month (conversions and win-backs).
    """
    c, rng, spec = sim.c, sim.rng, sim.spec
    gone = np.flatnonzero((c["state"] == _DRIFTING) & (c["drift_end"] <= t))
    c["state"][gone] = _CHURNED
    _event(sim, gone, "churn", t)
    _prepay(sim, t, gone)
    act = np.flatnonzero((c["state"] == _ACTIVE) & (c["first_m"] >= 0) & (c["first_m"] < t))
    hazard = _sigmoid(
        spec.churn_logit - 0.9 * c["L"][act] + 0.5 * np.minimum(c["rc"][act], 3)
        + 1.5 * c["rl"][act] + 30 * np.maximum(_price_gap(sim, t, act), 0) * c["sens"][act]
        + 0.8 * (c["n_open"][act] == 0) - 0.5 * (c["tier"][act] > 0)
        + 0.4 * sim.stress[c["ind"][act], t]
    )  # fmt: skip
    drift = act[rng.random(len(act)) < hazard]
    c["state"][drift] = _DRIFTING
    c["drift_end"][drift] = t + 1 + rng.poisson(spec.drift_months, len(drift))
    _event(sim, drift, "drift", t)
    churned = np.flatnonzero(c["state"] == _CHURNED)
    back = np.setdiff1d(churned[rng.random(len(churned)) < spec.winback_rate], gone)
    c["state"][back] = _ACTIVE
    c["L"][back] = c["mu"][back] + 0.3 + rng.normal(0.0, 0.3, len(back))
    _event(sim, back, "winback", t)
    return np.concatenate([_convert(sim, t), back])


def _convert(sim: _Sim, t: int) -> np.ndarray:
    """Prospects (Aware → Appeal → Ask) take a first loan (Act), or go cold with time."""
    c, rng = sim.c, sim.rng
    pros = np.flatnonzero((c["state"] == _PROSPECT) | (c["state"] == _COLD))
    waited, cold = t - c["arrive"][pros], c["state"][pros] == _COLD
    logit = (-4.3 + 0.8 * c["L"][pros] + 0.7 * c["eng"][pros] + 1.0 * (c["inq"][pros] > 0)
             - 0.03 * waited - 1.5 * cold)  # fmt: skip
    won = rng.random(len(pros)) < _sigmoid(logit)
    c["state"][pros[won]] = _ACTIVE
    _event(sim, pros[won], "convert", t)
    c["state"][pros[~won & ~cold & (waited > c["patience"][pros])]] = _COLD
    return pros[won]


def _prepay(sim: _Sim, t: int, gone: np.ndarray) -> None:
    """Churners who refinance elsewhere close their open loans early, within a few months."""
    rng = sim.rng
    payer = gone[rng.random(len(gone)) < sim.spec.prepay_share]
    when = np.full(len(sim.c["L"]), np.iinfo(np.int64).max)
    when[payer] = t + rng.geometric(0.5, len(payer)) - 1
    close, at = sim.loans("close_m"), when[sim.loans("cust")]
    early = (at < close) & (at > sim.loans("orig_m"))
    close[early] = at[early]  # a view: updates the book
    sim.loans("reason")[early] = _REFINANCED


def _originate(sim: _Sim, t: int, first: np.ndarray) -> None:
    """Book this month's loans: first loans, renewals at maturity, and new projects."""
    c, rng = sim.c, sim.rng
    ren = _renewals(sim, t)
    act = np.flatnonzero(c["state"] == _ACTIVE)
    appetite = np.exp(0.6 * c["L"][act] - 1.5 * c["rl"][act]) * (1 + 0.5 * (c["tier"][act] > 0))
    fresh = np.concatenate(
        [first, act[rng.random(len(act)) < _SEG_PROJECT[c["seg"][act]] * appetite]]
    )
    seg, k = c["seg"][fresh], len(fresh)
    product = _choice_rows(rng, _SEG_PRODUCT_P[seg])
    size = np.exp(_SEG_LOG_PRINCIPAL[seg] + rng.normal(0.0, 0.5, k)) * c["size"][fresh]
    day = np.where(c["arrive"][fresh] == t, c["onboard_day"][fresh] + rng.integers(0, 7, k),
                   rng.integers(0, 28, k))  # fmt: skip
    renewed = sim.loans("principal")[ren] * rng.lognormal(0.05, 0.15, len(ren))
    cust = np.concatenate([sim.loans("cust")[ren], fresh])
    product = np.concatenate([sim.loans("product")[ren], product]).astype(np.int64)
    principal = np.concatenate([renewed, size * _PRODUCT_SIZE[product[len(ren) :]]])
    fair = _PRODUCT_SPREAD[product] + _SEG_SPREAD[c["seg"][cust]]
    rate = _price(sim, t, cust, fair)
    term = _PRODUCT_TERMS[product, rng.integers(0, 4, len(cust))]
    kind = np.concatenate([sim.loans("kind")[ren], _draw_kinds(sim, product[len(ren) :])])
    term = _shape_terms(sim, product, kind, term)
    day = np.concatenate([sim.loans("day")[ren], np.minimum(day, 27)])
    principal = np.maximum(np.round(principal, -3), 1000.0)
    _book(sim, cust=cust, product=product, orig_m=np.full(len(cust), t), day=day, term=term,
          close_m=t + term, principal=principal, rate=rate, kind=kind,
          reason=np.zeros(len(cust), np.int64), miss=np.zeros(len(cust), np.int64))  # fmt: skip
    c["last_rate"][cust], c["last_fair"][cust] = rate, fair
    np.add.at(c["projects"], fresh, 1)
    c["first_m"][fresh] = np.where(c["first_m"][fresh] < 0, t, c["first_m"][fresh])


def _draw_kinds(sim: _Sim, product: np.ndarray) -> np.ndarray:
    """Repayment structure of new loans (renewals keep theirs): some term and project-finance
    loans are bullets, some working-capital loans are credit lines. No draw when a share is 0, so
    a world without these shapes is the world of earlier versions, number for number."""
    spec, rng, kind = sim.spec, sim.rng, np.full(len(product), _ANNUITY, np.int64)
    if spec.bullet_share > 0:
        bullet = np.isin(product, _BULLET_PRODUCTS) & (rng.random(len(product)) < spec.bullet_share)
        kind[bullet] = _BULLET
    if spec.revolving_share > 0:
        line = (product == _REVOLVING_PRODUCT) & (rng.random(len(product)) < spec.revolving_share)
        kind[line] = _REVOLVING
    return kind


def _shape_terms(sim: _Sim, product: np.ndarray, kind: np.ndarray, term: np.ndarray) -> np.ndarray:
    """Credit lines run to their yearly review; some project-finance loans run 10–15 years."""
    term = np.where(kind == _REVOLVING, _REVOLVING_TERM, term)
    share, rng = sim.spec.long_maturity_share, sim.rng
    if share > 0:
        long = (product == _LONG_PRODUCT) & (rng.random(len(product)) < share)
        term = np.where(long, rng.choice(_LONG_TERMS, len(product)), term)
    return term


def _price(sim: _Sim, t: int, cust: np.ndarray, fair: np.ndarray) -> np.ndarray:
    """Market + fair spread + the customer's own price term; loyal and core customers pay less."""
    c = sim.c
    rate = (sim.market[t] + fair + c["premium"][cust] - 0.002 * np.clip(c["L"][cust], -2, 2)
            - 0.002 * (c["tier"][cust] > 0) + sim.rng.normal(0.0, 0.0015, len(cust)))  # fmt: skip
    return np.maximum(rate, 0.01)


def _renewals(sim: _Sim, t: int) -> np.ndarray:
    """Loans maturing this month that an active customer rolls over (loyal, fairly priced)."""
    c, close = sim.c, sim.loans("close_m")
    due = np.flatnonzero((close == t) & (close == sim.loans("orig_m") + sim.loans("term")))
    due = due[c["state"][sim.loans("cust")[due]] == _ACTIVE]
    cu, product = sim.loans("cust")[due], sim.loans("product")[due].astype(np.int64)
    fair = _PRODUCT_SPREAD[product] + _SEG_SPREAD[c["seg"][cu]]
    gap = np.maximum(sim.loans("rate")[due] - sim.market[t] - fair, 0)
    logit = (_PRODUCT_RENEW[product] + _REVOLVING_RENEW * (sim.loans("kind")[due] == _REVOLVING)
             + 0.9 * c["L"][cu] - 1.0 * c["rl"][cu] - 40 * gap * c["sens"][cu]
             + _OFFER_LOGIT * (c["offer_until"][cu] >= t))  # fmt: skip
    return due[sim.rng.random(len(due)) < _sigmoid(logit)]


def _book(sim: _Sim, **cols: np.ndarray) -> None:
    """Append loans to the growable book (capacity doubles when full)."""
    k = len(cols["cust"])
    if sim.n_loans + k > len(sim.book["cust"]):
        cap = max(2 * sim.n_loans + k, 1024)
        sim.book = {name: np.resize(values, cap) for name, values in sim.book.items()}
    for name, values in cols.items():
        sim.book[name][sim.n_loans : sim.n_loans + k] = values
    sim.n_loans += k


def _refresh_tiers(sim: _Sim, t: int) -> None:
    """Resources follow the tier: core = several projects and several open loans; VIP = core
    with an exposure in the top 5 % of the book this month."""
    c, n = sim.c, len(sim.c["L"])
    open_ = (sim.loans("orig_m") <= t) & (sim.loans("close_m") > t)
    cust = sim.loans("cust")[open_]
    c["n_open"] = np.bincount(cust, minlength=n).astype(float)
    exposure = np.bincount(cust, weights=sim.loans("principal")[open_], minlength=n)
    if sim.replica:  # a few customers' copies: the bar stays the whole book's
        top = sim.top[t]
    else:
        top = np.quantile(exposure[exposure > 0], 0.95) if open_.any() else np.inf
        sim.top[t] = top
    core = (c["n_open"] >= 2) & (c["projects"] >= 3)
    c["tier"] = core + (core & (exposure >= top))


def _payments(sim: _Sim, t: int) -> np.ndarray:
    """Installments due this month: on time, late (longer at low loyalty), partial or missed.

    Returns, per customer, the installments paid more than 7 days late or missed.
    """
    c, rng = sim.c, sim.rng
    orig, close = sim.loans("orig_m"), sim.loans("close_m")
    matured = close == orig + sim.loans("term")
    due = np.flatnonzero((orig < t) & ((t < close) | ((t == close) & matured)))
    cu, n = sim.loans("cust")[due], len(due)
    loyalty, drift = c["L"][cu], c["state"][cu] == _DRIFTING
    stress = 0.6 * c["frag"][cu] + sim.stress[c["ind"][cu], t]
    u = rng.random(n)
    behind = sim.spec.arrears_persistence * (sim.loans("miss")[due] > 0)
    p_miss = _sigmoid(-5.2 - 0.9 * loyalty + 1.0 * stress + 1.2 * drift + behind)
    missed = u < p_miss
    late = ~missed & (u < p_miss + _sigmoid(-2.4 - 0.8 * loyalty + 0.8 * stress + 1.0 * drift))
    days_late = 1 + np.floor(rng.lognormal(1.5 - 0.4 * loyalty + 0.3 * stress, 0.9))
    early = -rng.integers(0, 6, n) * (rng.random(n) < 0.5)
    days = np.where(late, np.minimum(days_late, 180), early).astype(np.int16)
    partial = ~missed & (rng.random(n) < _sigmoid(-4.0 - 0.6 * loyalty + 0.8 * stress))
    frac = np.where(missed, np.nan, np.where(partial, rng.uniform(0.3, 0.9, n), 1.0))
    sim.emit("repayments", loan=due, t=np.full(n, t), days=days, frac=frac.astype(np.float32))
    _write_offs(sim, t, due, missed)
    return np.bincount(cu[missed | (days > 7)], minlength=len(c["L"]))


def _write_offs(sim: _Sim, t: int, due: np.ndarray, missed: np.ndarray) -> None:
    """Financial stress -> arrears -> credit exit: a loan with ``writeoff_missed`` missed
    installments in a row is written off this month, with every other open loan of its borrower,
    who leaves the bank (state churned)."""
    miss = sim.loans("miss")  # a view: updates the book
    miss[due] = np.where(missed, miss[due] + 1, 0)
    bad = np.unique(sim.loans("cust")[due[miss[due] >= sim.spec.writeoff_missed]])
    if not len(bad):
        return
    close, cust = sim.loans("close_m"), sim.loans("cust")
    hit = np.isin(cust, bad) & (sim.loans("orig_m") < t) & (close > t)
    close[hit] = t
    sim.loans("reason")[hit] = _WRITTEN_OFF
    sim.c["state"][bad] = _CHURNED
    _event(sim, bad, "write_off", t)


def _interaction_rates(sim: _Sim, idx: np.ndarray) -> np.ndarray:
    """Expected interactions this month, customers x interaction types, by state and loyalty."""
    c = sim.c
    loyalty, st = c["L"][idx], c["state"][idx]
    drift, pros, lapsed = st == _DRIFTING, st == _PROSPECT, (st == _CHURNED) | (st == _COLD)
    rel = (st == _ACTIVE) | drift
    damp, warm = np.where(drift, 0.35, 1.0), np.exp(0.6 * loyalty)
    rm = (rel * damp * _SEG_RM[c["seg"][idx]] * c["size"][idx] ** 0.3 * np.exp(0.5 * loyalty)
          * (1 + 0.7 * (c["tier"][idx] > 0) + 0.5 * (c["tier"][idx] > 1)))  # fmt: skip
    complaint = rel * (0.02 * np.exp(-0.9 * loyalty) * (1 + 1.5 * drift) + 0.1 * c["rl"][idx])
    return np.column_stack([
        0.4 * rm + 0.03 * pros * warm,
        0.6 * rm + 0.03 * (st == _CHURNED) + 0.02 * pros,
        0.04 * rel + 0.25 * pros + 0.05 * lapsed,
        (0.025 * rel * damp + 0.05 * pros) * warm,
        (0.05 * rel * damp + 0.05 * pros) * warm,
        (0.05 * rel * damp**2 + 0.03 * pros * np.exp(0.6 * c["eng"][idx])) * warm,
        complaint + 0.003 * pros,
        np.minimum(rel * 0.01 * np.exp(1.5 * loyalty) * np.where(drift, 0.1, 1.0), 0.3),
    ])  # fmt: skip


def _interactions(sim: _Sim, t: int, idx: np.ndarray) -> np.ndarray:
    """Draw this month's interactions, plus random noise; returns counts, customers x types."""
    rng = sim.rng
    counts = rng.poisson(_interaction_rates(sim, idx))
    rows, typ = np.nonzero(counts)
    reps = counts[rows, typ]
    who, typ = np.repeat(idx[rows], reps), np.repeat(typ, reps)
    channel, kind = _choice_rows(rng, _ITYPE_CHANNEL_P[typ]), _ITYPE_KIND[typ]
    noise = rng.poisson(sim.spec.noise_share * len(who)) if len(idx) else 0
    who = np.concatenate([who, idx[rng.integers(0, max(len(idx), 1), noise)]])
    channel = np.concatenate([channel, rng.integers(0, len(ct.KNOWN_CHANNELS), noise)])
    kind = np.concatenate([kind, rng.integers(0, len(ct.KNOWN_KINDS), noise)])
    sim.emit("interactions", cust=who, ts=_timestamps(sim, t, who), channel=channel, kind=kind)
    return counts


def _timestamps(sim: _Sim, t: int, who: np.ndarray) -> np.ndarray:
    """Times between 07:00 and 21:00 in month t, never before the customer's onboarding day."""
    c, rng = sim.c, sim.rng
    day = rng.integers(0, (sim.month_ns[t + 1] - sim.month_ns[t]) // _DAY, len(who))
    day = np.where(c["arrive"][who] == t, np.maximum(day, c["onboard_day"][who]), day)
    return sim.month_ns[t] + day * _DAY + rng.integers(7 * 3600, 21 * 3600, len(who)) * _SEC


def _surveys(sim: _Sim, t: int) -> None:
    """Yearly survey (6, 18, 30… months after the first loan); loyal customers answer more."""
    c, rng, spec = sim.c, sim.rng, sim.spec
    rel = (c["state"] == _ACTIVE) | (c["state"] == _DRIFTING)
    asked = np.flatnonzero(rel & (c["first_m"] >= 0) & ((t - c["first_m"]) % 12 == 6))
    drift = c["state"][asked] == _DRIFTING
    base = np.log(spec.survey_response / (1 - spec.survey_response))
    answers = rng.random(len(asked)) < _sigmoid(base + 0.6 * c["L"][asked] - 0.8 * drift)
    who, drift, n = asked[answers], drift[answers], int(answers.sum())
    mood = c["L"][who] - 0.75 * drift - 0.4 * np.minimum(c["rc"][who], 2)
    sat = np.clip(np.round(3.4 + 0.8 * mood + rng.normal(0.0, 0.7, n)), 1, 5) + 0.0
    nps = np.clip(np.round(6.6 + 1.6 * mood + rng.normal(0.0, 1.4, n)), 0, 10) + 0.0
    sat[rng.random(n) < spec.item_nonresponse] = np.nan
    nps[(rng.random(n) < spec.item_nonresponse) & ~np.isnan(sat)] = np.nan  # never both blank
    sim.emit("surveys", cust=who, t=np.full(n, t), day=rng.integers(0, 28, n), sat=sat, nps=nps)


def _update_loyalty(
    sim: _Sim, t: int, idx: np.ndarray, counts: np.ndarray, late: np.ndarray
) -> None:
    """AR(1) around the customer's base loyalty, pushed by this month's experience."""
    c = sim.c
    rm = counts[:, _RM_VISIT] + counts[:, _RM_CALL]
    push = (
        -0.25 * np.minimum(counts[:, _COMPLAINT], 3) - 0.3 * np.minimum(late, 2)
        - 8 * np.maximum(_price_gap(sim, t, idx), 0) * c["sens"][idx]
        - 0.15 * (c["state"][idx] == _DRIFTING) + 0.06 * np.minimum(rm, 3)
        + 0.08 * np.minimum(counts[:, _EVENT], 1) + 0.04 * np.minimum(counts[:, _ONLINE], 2)
    )  # fmt: skip
    mu, noise = c["mu"][idx], sim.rng.normal(0.0, 0.15, len(idx))
    c["L"][idx] = mu + 0.92 * (c["L"][idx] - mu) + push + noise
    c["rc"][idx] = 0.7 * c["rc"][idx] + counts[:, _COMPLAINT]
    c["rl"][idx] = 0.7 * c["rl"][idx] + 0.3 * (late > 0)
    engaged = counts[:, _EVENT] + 0.5 * counts[:, _ONLINE] + counts[:, _INQUIRY]
    c["eng"][idx] = 0.8 * c["eng"][idx] + engaged
    c["inq"][idx] = counts[:, _INQUIRY]
    c["rmr"][idx] = 0.8 * c["rmr"][idx] + 0.2 * rm  # RM contacts a month, smoothed: neglect is low


# --- retention campaigns -----------------------------------------------------------------------


def _campaigns(sim: _Sim, t: int) -> None:
    """At the start of month t: a replica with a forced treatment applies it (and no other); the
    world, from ``campaigns.start``, runs the bank's campaign decided on the last day of month
    t-1, and any other replica replays the bank's rule against the world's selection bar."""
    if sim.forced is not None:
        month, strategy = sim.forced
        if month == t:
            who = np.flatnonzero(strategy >= 0)
            _treat(sim, t, who, strategy[who])
        return
    spec = sim.spec.campaigns
    if not spec.on or t < 1 or sim.month_ns[t] <= _day(spec.start).value:
        return
    rng = sim.rng if sim.replica else sim.crng  # a replica has no campaign stream of its own
    who = _bank_selection(sim, t, rng)
    strategy = rng.integers(0, len(CAMPAIGN_STRATEGIES), len(who))
    control = rng.random(len(who)) < spec.control_share
    cost = _treat(sim, t, who[~control], strategy[~control])
    sim.c["camp_m"][who] = t
    sim.emit("campaigns", cust=who, t=np.full(len(who), t), strategy=strategy,
             control=control, cost=np.where(control, 0.0, _scatter(cost, ~control)))  # fmt: skip


def _scatter(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    out = np.zeros(len(where))
    out[where] = values
    return out


def _bank_selection(sim: _Sim, t: int, rng: np.random.Generator) -> np.ndarray:
    """The bank's historical rule: the top ``monthly_share`` of borrowers with open loans by a
    simple risk score of what it sees (recent complaints, lateness, price above the market, a
    maturity within the next months). It cannot see who is already drifting away.

    The world records the month's bar, the lowest score it selected (``sim.cut``). A replica
    (a few customers' copies) selects the copies that score at least that bar: the rule as one
    customer meets it, whatever the rest of the book scores."""
    c, spec = sim.c, sim.spec.campaigns
    seen = (c["state"] == _ACTIVE) | (c["state"] == _DRIFTING)
    idx = np.flatnonzero(seen & (c["n_open"] > 0) & (t - c["camp_m"] > spec.cooldown_months))
    k = len(idx) if sim.replica else int(round(spec.monthly_share * len(idx)))
    if k == 0:
        return idx[:0]
    score = (0.5 * np.minimum(c["rc"][idx], 3) + 1.5 * c["rl"][idx]
             + 30 * np.maximum(_price_gap(sim, t - 1, idx), 0) + 0.3 * _maturing(sim, t, idx)
             + rng.normal(0.0, 0.05, len(idx)))  # fmt: skip
    if sim.replica:
        return idx[score >= sim.cut[t]]
    top = np.argsort(-score, kind="stable")[:k]
    sim.cut[t] = score[top[-1]]
    return np.sort(idx[top])


def _maturing(sim: _Sim, t: int, idx: np.ndarray) -> np.ndarray:
    """Whether each customer has an open loan maturing within the renewal offer's months."""
    close, orig, cust = sim.loans("close_m"), sim.loans("orig_m"), sim.loans("cust")
    soon = (close >= t) & (close < t + _OFFER_MONTHS) & (close == orig + sim.loans("term"))
    return np.bincount(cust[soon & (orig < t)], minlength=len(sim.c["L"]))[idx] > 0


def _treat(sim: _Sim, t: int, who: np.ndarray, strategy: np.ndarray) -> np.ndarray:
    """Apply each customer's strategy through the world's own mechanics; returns the costs.

    - price review: the customer's price comes down by ``_PRICE_CUT`` of its gap above the
      market (it only matters for price-sensitive borrowers priced above the market); its cost
      is the interest given up over a year on the open principal (at least the flat fee);
    - RM follow-up: loyalty rises by 0.8·exp(-3·rmr), most in neglected relationships;
    - service recovery: after complaints, loyalty rises by 0.35·min(rc, 2) and the complaint
      memory falls to 30 %; without recent complaints it does nothing;
    - renewal offer: loans maturing within ``_OFFER_MONTHS`` renew with +``_OFFER_LOGIT``;
    - e-mail touchpoint: engagement +0.5, loyalty +0.03 (cheap, nearly nothing).
    A customer already drifting away (refinancing elsewhere) does not respond to any of them:
    the treatment costs what it costs and changes nothing. Deterministic: no random draws.
    """
    cost = _CAMPAIGN_COST[strategy].copy()
    listening = sim.c["state"][who] != _DRIFTING  # a price review of a leaver: the flat fee only
    return _treat_listening(sim, t, who[listening], strategy[listening], cost, listening)


def _treat_listening(
    sim: _Sim, t: int, who: np.ndarray, strategy: np.ndarray, cost: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """``_treat`` for the customers who respond (``at``: their place in the cost array)."""
    c = sim.c
    price = who[strategy == _PRICE_REVIEW]
    gap = np.maximum(_price_gap(sim, t - 1, price), 0)
    c["last_rate"][price] -= _PRICE_CUT * gap
    repriced = np.flatnonzero(at)[strategy == _PRICE_REVIEW]
    cost[repriced] = np.maximum(_PRICE_CUT * gap * _open_principal(sim, t, price),
                                _CAMPAIGN_COST[_PRICE_REVIEW])  # fmt: skip
    rm = who[strategy == _RM_FOLLOW_UP]
    c["L"][rm] += 0.8 * np.exp(-3.0 * c["rmr"][rm])
    rec = who[strategy == _SERVICE_RECOVERY]
    c["L"][rec] += 0.35 * np.minimum(c["rc"][rec], 2)
    c["rc"][rec] *= 0.3
    offer = who[strategy == _RENEWAL_OFFER]
    c["offer_until"][offer] = t + _OFFER_MONTHS - 1
    mail = who[strategy == _EMAIL_TOUCH]
    c["eng"][mail] += 0.5
    c["L"][mail] += 0.03
    return cost


def _open_principal(sim: _Sim, t: int, who: np.ndarray) -> np.ndarray:
    open_ = (sim.loans("orig_m") < t) & (sim.loans("close_m") >= t)
    weights = np.where(open_, sim.loans("principal"), 0.0)
    return np.bincount(sim.loans("cust"), weights=weights, minlength=len(sim.c["L"]))[who]


def _campaigns_frame(sim: _Sim, cid: np.ndarray) -> pd.DataFrame | None:
    """The campaigns table: the decision day (the last day of the month before the treatment),
    the customer, the strategy, the arm and the treatment's cost (0 for controls)."""
    if not sim.out.get("campaigns"):
        return None
    r = _collect(sim, "campaigns")
    frame = pd.DataFrame({
        ct.CUSTOMER_ID: cid[r["cust"]],
        ct.CAMPAIGN_DATE: _dates(sim.month_ns[r["t"]] - _DAY),
        ct.STRATEGY_ID: _labels(CAMPAIGN_STRATEGIES, r["strategy"]),
        ct.ARM: np.where(r["control"], ct.CONTROL, ct.TREATED).astype(object),
        ct.COST: np.round(r["cost"], 2),
    })  # fmt: skip
    return _sorted(frame, r["t"], frame[ct.CUSTOMER_ID].to_numpy())


# --- from simulation state to contract tables --------------------------------------------------


def _collect(sim: _Sim, table: str) -> dict[str, np.ndarray]:
    chunks = sim.out[table]
    return {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``C0000001``-style ids built vectorised: one Python string per distinct id."""
    if len(numbers) == 0:
        return np.array([], dtype=object)
    text = np.char.zfill(numbers.astype(np.int64).astype(str), width)
    return np.char.add(prefix, text).astype(object)


def _dates(ns: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    ns = np.asarray(ns, dtype=np.int64)
    if missing is not None:
        ns = np.where(missing, np.iinfo(np.int64).min, ns)  # int64 min is NaT
    return ns.astype("datetime64[ns]")


def _rank(*keys: np.ndarray) -> np.ndarray:
    """Position of each row when sorted by ``keys`` (first key most significant)."""
    order = np.lexsort(keys[::-1])
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _labels(names: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    return np.array(names, dtype=object)[codes]


def _sorted(frame: pd.DataFrame, *keys: np.ndarray) -> pd.DataFrame:
    return frame.iloc[np.lexsort(keys[::-1])].reset_index(drop=True)


def _tables(sim: _Sim, cid: np.ndarray) -> ct.Tables:
    c = sim.c
    loan_rank = _rank(sim.loans("orig_m"), sim.loans("day"))
    lid = _ids("L", loan_rank + 1, 8)
    customers = pd.DataFrame({
        ct.CUSTOMER_ID: cid,
        ct.ONBOARDING_DATE: _dates(sim.month_ns[c["arrive"]] + c["onboard_day"] * _DAY),
        ct.SEGMENT: _labels(SEGMENTS, c["seg"]),
        ct.INDUSTRY: _labels(INDUSTRIES, c["ind"]),
        ct.REGION: _labels(REGIONS, c["reg"]),
    })  # fmt: skip
    return ct.Tables(
        loans=_sorted(_loans_frame(sim, cid, lid), loan_rank),
        customers=customers.sort_values(ct.CUSTOMER_ID, ignore_index=True),
        repayments=_repayments_frame(sim, lid, loan_rank),
        interactions=_interactions_frame(sim, cid),
        surveys=_surveys_frame(sim, cid),
        campaigns=_campaigns_frame(sim, cid),
    )


def _close_reasons(sim: _Sim) -> np.ndarray:
    """loans.close_reason: matured at the contractual term, else the book's reason; empty while
    the loan is open at the end of the data."""
    close = sim.loans("close_m")
    matured = close == sim.loans("orig_m") + sim.loans("term")
    code = np.where(matured, _MATURED, sim.loans("reason"))
    names = np.array(["matured", "refinanced", "written_off"], dtype=object)[code]
    return np.where(close >= sim.months, None, names)


def _loans_frame(sim: _Sim, cid: np.ndarray, lid: np.ndarray) -> pd.DataFrame:
    close, day = sim.loans("close_m"), sim.loans("day")
    closed_ns = sim.month_ns[np.minimum(close, sim.months)] + day * _DAY
    frame = pd.DataFrame({
        ct.LOAN_ID: lid,
        ct.CUSTOMER_ID: cid[sim.loans("cust")],
        ct.ORIGINATION_DATE: _dates(sim.month_ns[sim.loans("orig_m")] + day * _DAY),
        ct.PRINCIPAL: sim.loans("principal"),
        ct.PRODUCT: np.where(sim.loans("kind") == _REVOLVING, _REVOLVING_LABEL,
                             _labels(PRODUCTS, sim.loans("product"))),
        ct.INTEREST_RATE: np.round(sim.loans("rate"), 5),
        ct.TERM_MONTHS: sim.loans("term"),
        ct.CLOSED_DATE: _dates(closed_ns, close >= sim.months),
    })  # fmt: skip
    return (
        frame.assign(**{ct.CLOSE_REASON: _close_reasons(sim)}) if sim.spec.close_reason else frame
    )


def _installment(principal: np.ndarray, rate: np.ndarray, term: np.ndarray) -> np.ndarray:
    """Monthly annuity payment."""
    r = rate / 12.0
    return np.round(principal * r / (1.0 - (1.0 + r) ** -term.astype(float)), 2)


def _amounts_due(sim: _Sim, loan: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Installment ``t`` of each ``loan``: an annuity, or interest only for bullets and credit
    lines, whose principal falls due with the last installment at maturity."""
    principal, rate, term = sim.loans("principal"), sim.loans("rate"), sim.loans("term")
    kind, close = sim.loans("kind")[loan], sim.loans("close_m")[loan]
    annuity = _installment(principal, rate, term)[loan]
    interest = np.round(principal * rate / 12.0, 2)[loan]
    last = (t == close) & (close == sim.loans("orig_m")[loan] + term[loan])
    balloon = np.where(last, principal[loan], 0.0)
    return np.where(kind == _ANNUITY, annuity, interest + balloon)


def _repayments_frame(sim: _Sim, lid: np.ndarray, loan_rank: np.ndarray) -> pd.DataFrame:
    """Installments with their payment; paid after the end of the data counts as unpaid."""
    r = _collect(sim, "repayments")
    loan = r["loan"]
    due_ns = sim.month_ns[r["t"]] + sim.loans("day")[loan] * _DAY
    paid_ns = due_ns + r["days"].astype(np.int64) * _DAY
    unpaid = np.isnan(r["frac"]) | (paid_ns > sim.month_ns[-1] - _DAY)
    due = _amounts_due(sim, loan, r["t"])
    frame = pd.DataFrame({
        ct.LOAN_ID: lid[loan],
        ct.DUE_DATE: _dates(due_ns),
        ct.AMOUNT_DUE: due,
        ct.PAID_DATE: _dates(paid_ns, unpaid),
        ct.AMOUNT_PAID: np.where(unpaid, np.nan, np.round(due * r["frac"], 2)),
    })  # fmt: skip
    return _sorted(frame, loan_rank[loan], r["t"])


def _interactions_frame(sim: _Sim, cid: np.ndarray) -> pd.DataFrame:
    r = _collect(sim, "interactions")
    frame = pd.DataFrame({
        ct.CUSTOMER_ID: cid[r["cust"]],
        ct.TIMESTAMP: _dates(r["ts"]),
        ct.CHANNEL: _labels(ct.KNOWN_CHANNELS, r["channel"]),
        ct.KIND: _labels(ct.KNOWN_KINDS, r["kind"]),
    })  # fmt: skip
    return _sorted(frame, r["ts"], frame[ct.CUSTOMER_ID].to_numpy())


def _surveys_frame(sim: _Sim, cid: np.ndarray) -> pd.DataFrame:
    r = _collect(sim, "surveys")
    ns = sim.month_ns[r["t"]] + r["day"] * _DAY
    frame = pd.DataFrame({
        ct.CUSTOMER_ID: cid[r["cust"]],
        ct.SURVEY_DATE: _dates(ns),
        ct.SATISFACTION: r["sat"].astype(float),
        ct.NPS: r["nps"].astype(float),
    })  # fmt: skip
    return _sorted(frame, ns, frame[ct.CUSTOMER_ID].to_numpy())


# --- latent truth ------------------------------------------------------------------------------


def _latent(sim: _Sim, cid: np.ndarray) -> Latent:
    c, months = sim.c, _dates(sim.month_ns[:-1])
    customers = pd.DataFrame({
        ct.CUSTOMER_ID: cid, "prospect": c["prospect"], "base_loyalty": c["mu"],
        "price_sensitivity": c["sens"], "fragility": c["frag"], "price_premium": c["premium"],
        "final_loyalty": c["L"], "final_state": _labels(STATES, c["state"]),
    })  # fmt: skip
    ev = _collect(sim, "events")
    events = pd.DataFrame({
        ct.CUSTOMER_ID: cid[ev["cust"]], "event": _labels(EVENTS, ev["event"]),
        "month": months[ev["t"]],
    })  # fmt: skip
    market = pd.DataFrame({"month": months, "market_rate": sim.market})
    customers = customers.sort_values(ct.CUSTOMER_ID, ignore_index=True)
    return Latent(customers, events, market, _monthly(sim, cid, months))


def _monthly(sim: _Sim, cid: np.ndarray, months: np.ndarray) -> pd.DataFrame | None:
    """Long table (customer_id, month, loyalty, state) of arrived customers, when kept."""
    if sim.monthly is None:
        return None
    loyalty = np.stack([m[0] for m in sim.monthly])
    state = np.stack([m[1] for m in sim.monthly])
    t, i = np.nonzero(state != _PENDING)
    return pd.DataFrame({
        ct.CUSTOMER_ID: cid[i], "month": months[t], "loyalty": loyalty[t, i].astype(float),
        "state": _labels(STATES, state[t, i]),
    })  # fmt: skip


# --- the oracle: true churn probabilities from the latent state ---------------------------------


def oracle_churn(
    spec: WorldSpec,
    rows: pd.DataFrame,
    horizon_days: int,
    replicates: int = 500,
    seed: int = 0,
    max_copies: int = 200_000,
    macro: str = "realised",
) -> np.ndarray:
    """The true probability of the churn label for each (customer_id, as_of) row.

    The world is simulated again from ``spec``; at each snapshot (a month-end) the simulation's
    full state of the rows' customers — loyalty, recent complaints and lateness, engagement,
    state, open loans — is copied ``replicates`` times and each copy lives the next
    ``horizon_days`` through the generator's own monthly step (``_step``). The probability is the
    share of copies with no loan originated in (t, t+H] and none open at t+H (features/labels.py).
    With ``macro="realised"`` the copies share the world's realised market rates, industry
    stress and VIP bar: the oracle knows the macro future, so it is a ceiling for any model that
    only sees the past. With ``macro="resampled"`` each batch of copies (at least
    ``MACRO_PATHS`` batches) gets its own future market rate and industry stress after t, drawn
    from the same processes continued from their state at t: the truth for someone who knows
    every customer's latent state but, like any model, not the macro future (not available with
    a rate-shock drift). Copies are stepped ``max_copies`` at a time (memory). Customers not
    active at t get a probability too. Costs two runs of the world (the first records the VIP
    bar) plus the copies' months.
    """
    if macro not in ("realised", "resampled"):
        raise ValueError(f"oracle_churn: macro must be realised or resampled, got {macro!r}")
    if macro == "resampled" and spec.drift.on and spec.drift.rate_shock:
        raise ValueError("oracle_churn: macro='resampled' does not continue a rate-shocked path")
    proba = np.full(len(rows), np.nan)
    for sim, bar, t, day, pick, codes in _snapshot_states(spec, rows):
        rng = np.random.default_rng((spec.seed, seed, t))
        proba[pick] = _churn_share(sim, bar, codes, t, day, horizon_days, replicates, rng,
                                   max_copies, resample_macro=macro == "resampled")  # fmt: skip
    return proba


def oracle_uplift(
    spec: WorldSpec,
    rows: pd.DataFrame,
    horizon_days: int,
    replicates: int = 200,
    seed: int = 0,
    max_copies: int = 200_000,
) -> pd.DataFrame:
    """The true effect of a strategy on the churn label for each (customer_id, as_of,
    strategy_id) row: ``p_control`` (no treatment), ``p_treated`` (the strategy applied at the
    start of the month after ``as_of``, the campaign's decision day) and ``uplift`` =
    p_control - p_treated (the churn the strategy prevents; negative if it harms).

    Both arms are the same copies of the same state (``oracle_churn``) stepped with the same
    seed: common random numbers. The draws coincide while the two futures keep the same shapes
    (the same customers in each state, the same counts); after a treatment changes one of them
    the streams drift apart, so the pairing reduces the variance of the difference, not to zero.
    No later campaign runs in either arm. ``strategy_id`` is one of ``CAMPAIGN_STRATEGIES``.
    """
    strategy = pd.Index(CAMPAIGN_STRATEGIES).get_indexer(rows["strategy_id"])
    if (strategy < 0).any():
        bad = rows["strategy_id"][strategy < 0].unique()[:5].tolist()
        raise ValueError(f"oracle_uplift: strategies outside {CAMPAIGN_STRATEGIES}: {bad}")
    if rows.duplicated(["customer_id", "as_of", "strategy_id"]).any():
        raise ValueError("oracle_uplift: one row per (customer_id, as_of, strategy_id)")
    p0, p1 = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    for sim, bar, t, day, pick, codes in _snapshot_states(spec, rows):
        who, slot = np.unique(codes, return_inverse=True)  # each customer copied once
        arms = [(None, np.full(len(who), -1))]  # every arm steps the same copies: CRN
        for k in np.unique(strategy[pick]):
            arm = np.full(len(who), -1)
            arm[slot[strategy[pick] == k]] = k
            arms.append((k, arm))
        for k, arm in arms:
            rng = np.random.default_rng((spec.seed, seed, t))  # the same numbers in every arm
            share = _churn_share(sim, bar, who, t, day, horizon_days, replicates, rng,
                                 max_copies, arm)[slot]  # fmt: skip
            if k is None:
                p0[pick] = share
            else:
                p1[pick[strategy[pick] == k]] = share[strategy[pick] == k]
    return pd.DataFrame({"p_control": p0, "p_treated": p1, "uplift": p0 - p1}, index=rows.index)


def simulate_policies(
    spec: WorldSpec,
    as_of: pd.Timestamp,
    policies: dict[str, pd.DataFrame],
    horizon_days: int,
    replicates: int = 20,
    seed: int = 0,
    max_copies: int = 200_000,
) -> pd.DataFrame:
    """Re-run the book forward from ``as_of`` under each policy, with common random numbers.

    A policy is a frame of (customer_id, strategy_id): who gets which strategy on the decision
    day ``as_of`` (a month-end); the bank runs no other campaign. Every customer of the world is
    copied ``replicates`` times at its state on ``as_of`` and lives the next ``horizon_days``
    untreated: that is the no-campaign future of the book. Copies do not interact (a replica
    reads the world's VIP bar), so a customer a policy does not target has that same future
    under the policy. A policy's targeted customers are stepped twice more from one seed, with
    and without their strategies (``oracle_uplift``'s pairing), and their churn under the
    policy is the book's untreated share plus that paired difference (clipped to [0, 1]).

    Returns one row per customer of the world: ``customer_id``, ``none`` (untreated) and, per
    policy, the share of futures carrying the churn label at ``as_of`` (column = its name).
    """
    ids = _customer_ids(_new_sim(spec, keep_monthly=False))
    rows = pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp(as_of)})
    sim, bar, t, day, _, codes = next(_snapshot_states(spec, rows))  # one snapshot: the world

    def share(who: np.ndarray, arm: np.ndarray | None) -> np.ndarray:
        rng = np.random.default_rng((spec.seed, seed, t))  # the same numbers for every run
        return _churn_share(sim, bar, who, t, day, horizon_days, replicates, rng, max_copies, arm,
                            bank=False)  # fmt: skip

    base = share(codes, None)
    out = {"customer_id": ids, "none": base}
    for name, policy in policies.items():
        arm = pd.Index(CAMPAIGN_STRATEGIES).get_indexer(policy["strategy_id"])
        if (arm < 0).any():
            raise ValueError(f"simulate_policies: {name}: strategies outside the campaigns'")
        where = pd.Index(ids).get_indexer(policy["customer_id"])
        effect = np.zeros(len(ids))
        if len(where):
            who = codes[where]
            effect[where] = share(who, arm) - share(who, np.full(len(who), -1))
        out[name] = np.clip(base + effect, 0.0, 1.0)
    return pd.DataFrame(out)


def _snapshot_states(spec: WorldSpec, rows: pd.DataFrame) -> Iterator[tuple]:
    """Run the world and stop at each snapshot of ``rows``: yields (world, VIP bar, month t,
    as_of, the rows at that as_of, their customers' positions in the world)."""
    as_of = pd.to_datetime(rows["as_of"]).dt.normalize().dt.as_unit("ns")
    if not (as_of + pd.Timedelta(days=1)).dt.is_month_start.all():
        raise ValueError("oracle: every as_of must be a month-end (a snapshot)")
    sim = _new_sim(spec, keep_monthly=False)
    position = pd.Series(np.arange(len(sim.c["L"])), index=_customer_ids(sim))
    who = position.reindex(rows["customer_id"].to_numpy())
    if who.isna().any():
        raise ValueError(f"oracle: unknown customers {who[who.isna()].index[:5].tolist()}")
    codes = who.to_numpy().astype(np.int64)
    days = as_of.to_numpy()
    month = np.searchsorted(sim.month_ns, days.astype(np.int64), side="right") - 1
    bar = world_bars(spec)
    for t in _run(sim):
        for day in np.unique(days[month == t]):
            pick = np.flatnonzero(days == day)
            yield sim, bar, t, pd.Timestamp(day), pick, codes[pick]


@dataclass(frozen=True)
class _Bars:
    """What a replica reads from the whole book, month by month: the VIP exposure bar (top 5 %)
    and the bank's campaign selection bar (+inf: no campaign that month)."""

    top: np.ndarray
    cut: np.ndarray


def world_bars(spec: WorldSpec) -> _Bars:
    """The book-wide bars of the world month by month (``_Bars``): a whole run of the world."""
    sim = _new_sim(spec, keep_monthly=False)
    for _ in _run(sim):
        pass
    return _Bars(top=sim.top, cut=sim.cut)


def _churn_share(
    sim: _Sim, bar: _Bars, who: np.ndarray, t: int, as_of: pd.Timestamp, horizon_days: int,
    replicates: int, rng: np.random.Generator, max_copies: int, strategy: np.ndarray | None = None,
    resample_macro: bool = False, bank: bool = True,
) -> np.ndarray:  # fmt: skip
    """Share of ``replicates`` futures, from the world's state after month t, in which each of
    customers ``who`` carries the churn label at ``as_of``; ``strategy`` (a CAMPAIGN_STRATEGIES
    code per customer, -1 = none) is applied at the start of month t+1; with ``resample_macro``
    each batch of copies lives its own market and industry-stress future after t; without
    ``strategy`` the copies live the bank's campaigns (replayed), unless ``bank`` is False.

    With ``strategy`` (the paired runs of ``oracle_uplift`` and ``simulate_policies``) each month
    of a chunk of copies draws from its own stream, seeded from ``rng`` before the chunk is
    stepped: two runs from the same ``rng`` start every month on the same numbers, however far
    their previous months drifted apart. ``oracle_churn`` keeps one stream (its figures as
    published)."""
    per = max(1, max_copies // max(len(who), 1))
    if resample_macro:
        per = min(per, -(-replicates // MACRO_PATHS))
    churned = np.zeros(len(who))
    for done in range(0, replicates, per):
        reps = min(per, replicates - done)
        macro = _future_macro(sim, t, rng) if resample_macro else None
        if strategy is None:
            rep = _replica(sim, bar, who, reps, rng, macro)
            if not bank:  # no treatment forced, and none by the bank either (draws nothing)
                rep.forced = (t + 1, np.full(len(who) * reps, -1))
        else:
            seeds = rng.integers(0, 2**63 - 1, size=sim.months)
            rep = _replica(sim, bar, who, reps, np.random.default_rng(seeds[0]), macro)
            rep.forced, rep.month_seeds = (t + 1, np.tile(strategy, reps)), seeds
        churned += _replay_churn(rep, len(who), t, as_of.value, horizon_days)
    return churned / replicates


MACRO_PATHS = 50  # macro futures per oracle row at least, with macro="resampled"


def _future_macro(sim: _Sim, t: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The market rate and industry stress with months after t drawn anew: the processes of
    ``_market_path`` and ``_industry_stress`` continued from their state at month t (the
    market's level and momentum recovered from the realised path)."""
    market, stress = sim.market.copy(), sim.stress.copy()
    level = np.arctanh(np.clip((sim.market[: t + 1] - 0.05) / 0.02, -0.999999, 0.999999))
    velocity = level[t] - 0.95 * level[t - 1] if t >= 1 else 0.0
    current = level[t]
    later = sim.months - t - 1
    for m, shock in zip(range(t + 1, sim.months), rng.normal(0.0, 0.05, later), strict=True):
        velocity = 0.85 * velocity + shock
        current = 0.95 * current + velocity
        market[m] = 0.05 + 0.02 * np.tanh(current)
    shocks = rng.normal(0.0, 0.25, (stress.shape[0], later)) + rng.normal(0.0, 0.12, later)
    for k, m in enumerate(range(t + 1, sim.months)):
        stress[:, m] = 0.85 * stress[:, m - 1] + shocks[:, k]
    return market, stress


def _replica(
    sim: _Sim,
    bar: _Bars,
    who: np.ndarray,
    reps: int,
    rng: np.random.Generator,
    macro: tuple[np.ndarray, np.ndarray] | None = None,
) -> _Sim:
    """``reps`` copies of customers ``who`` (with their loans) at the world's current state;
    copy r of ``who[i]`` is customer ``r * len(who) + i``. Their VIP bar and the bank's campaign
    selection bar are the world's (``world_bars``): a few customers' copies do not move the whole
    book's top 5 %, nor the share of it the bank selects. The world itself is not changed.
    ``macro``: (market, stress) the copies live instead of the world's."""
    market, stress = (sim.market, sim.stress) if macro is None else macro
    n, loan_cust = len(who), sim.loans("cust")
    slot = np.full(len(sim.c["L"]), -1)
    slot[who] = np.arange(n)
    mine = np.flatnonzero(slot[loan_cust] >= 0)
    book = {name: np.tile(sim.loans(name)[mine], reps) for name in _BOOK}
    book["cust"] = np.repeat(np.arange(reps) * n, len(mine)) + np.tile(slot[loan_cust[mine]], reps)
    c = {name: values[np.tile(who, reps)] for name, values in sim.c.items()}
    return _Sim(sim.spec, rng, sim.months, sim.month_ns, market, stress, c, book,
                n_loans=len(mine) * reps, out=None, top=bar.top, cut=bar.cut,
                replica=True)  # fmt: skip


def _replay_churn(rep: _Sim, n_who: int, t: int, as_of_ns: int, horizon_days: int) -> np.ndarray:
    """Step the replica from month t+1 to the month of t+H; per original customer, how many of
    its copies carry the churn label (features/labels.py's rule, on the replica's loans)."""
    end_ns = as_of_ns + horizon_days * int(_DAY)
    last = int(np.searchsorted(rep.month_ns, end_ns, side="right")) - 1
    if last >= rep.months:
        raise ValueError("oracle_churn: as_of + horizon_days lies after the end of the world")
    for m in range(t + 1, last + 1):
        if rep.month_seeds is not None:
            rep.rng = np.random.default_rng(rep.month_seeds[m])
        _step(rep, m)
    day = rep.loans("day") * _DAY
    orig = rep.month_ns[rep.loans("orig_m")] + day
    close = rep.month_ns[np.minimum(rep.loans("close_m"), rep.months)] + day
    keep = ((orig > as_of_ns) | (close > end_ns)) & (orig <= end_ns)
    kept = np.bincount(rep.loans("cust")[keep], minlength=len(rep.c["L"]))
    return (kept == 0).reshape(-1, n_who).sum(axis=0)


# --- the oracle of churn time and cause (features/events.py's rule) -----------------------------


def oracle_incidence(
    spec: WorldSpec,
    rows: pd.DataFrame,
    events: EventSpec,
    replicates: int = 200,
    seed: int = 0,
    max_copies: int = 200_000,
) -> np.ndarray:
    """The true cumulative incidence F_c(k) of each churn cause, (len(rows), K, len(CAUSES)).

    Like ``oracle_churn``: at each snapshot the rows' customers are copied ``replicates`` times
    from the world's full state and each copy lives the next K grid months
    (``events.month_ends()``) through the generator's own step. A copy churns in month k by
    features/events.py's rule: no loan originated in (t, t + K months], none open at t + K
    months, and k the first grid month with none open; its cause is the recorded close reason of
    the last loan to close among those open at t (matured: runoff, refinanced, written_off:
    credit_exit), ``lapsed`` when none was open at t. The world records every close's reason,
    so the oracle needs no inference. The copies know the macro future: a ceiling.
    """
    as_of = pd.to_datetime(rows["as_of"]).dt.normalize().dt.as_unit("ns")
    if not (as_of + pd.Timedelta(days=1)).dt.is_month_start.all():
        raise ValueError("oracle_incidence: every as_of must be a month-end (a snapshot)")
    sim = _new_sim(spec, keep_monthly=False)
    position = pd.Series(np.arange(len(sim.c["L"])), index=_customer_ids(sim))
    who = position.reindex(rows["customer_id"].to_numpy())
    if who.isna().any():
        raise ValueError(
            f"oracle_incidence: unknown customers {who[who.isna()].index[:5].tolist()}"
        )
    codes = who.to_numpy().astype(np.int64)
    month = np.searchsorted(sim.month_ns, as_of.to_numpy().astype(np.int64), side="right") - 1
    offsets = np.array(events.month_ends(), dtype=np.int64)
    out, bar = np.full((len(rows), len(offsets), len(CAUSES)), np.nan), world_bars(spec)
    for t in _run(sim):
        for day in np.unique(as_of.to_numpy()[month == t]):
            pick = np.flatnonzero(as_of.to_numpy() == day)
            rng = np.random.default_rng((spec.seed, seed, t))  # oracle_churn's: same futures
            per = max(1, max_copies // len(pick))
            counts = np.zeros((len(pick), len(offsets), len(CAUSES)))
            for done in range(0, replicates, per):
                rep = _replica(sim, bar, codes[pick], min(per, replicates - done), rng)
                counts += _replay_causes(rep, len(pick), t, pd.Timestamp(day).value, offsets)
            out[pick] = counts / replicates
    return out


def _replay_causes(rep: _Sim, n_who: int, t: int, as_of_ns: int, offsets: np.ndarray) -> np.ndarray:
    """Step the replica through t + K months; per original customer, (K, causes) counts of
    copies churned by each grid month and cause (``oracle_incidence``'s rule)."""
    end_ns = as_of_ns + int(offsets[-1]) * int(_DAY)
    last = int(np.searchsorted(rep.month_ns, end_ns, side="right")) - 1
    if last >= rep.months:
        raise ValueError("oracle_incidence: as_of + K months lies after the end of the world")
    for m in range(t + 1, last + 1):
        _step(rep, m)
    day = rep.loans("day") * _DAY
    orig = rep.month_ns[rep.loans("orig_m")] + day
    close = rep.month_ns[np.minimum(rep.loans("close_m"), rep.months)] + day
    cust, copies = rep.loans("cust"), len(rep.c["L"])
    returned = np.bincount(cust[(orig > as_of_ns) & (orig <= end_ns)], minlength=copies) > 0
    at = as_of_ns + offsets[:, None] * int(_DAY)  # (K, 1)
    open_k = np.stack([np.bincount(cust[o], minlength=copies)
                       for o in (orig[None, :] <= at) & (close[None, :] > at)])  # fmt: skip
    event = ~returned & (open_k[-1] == 0)
    first = np.argmax(open_k == 0, axis=0)  # 0-based grid month of the churn
    cause = _replica_causes(rep, cust, orig, close, as_of_ns, copies)
    counts = np.zeros((copies, len(offsets), len(CAUSES)))
    hit = np.flatnonzero(event)
    counts[hit, first[hit], cause[hit]] = 1.0
    counts = np.cumsum(counts, axis=1)
    return counts.reshape(-1, n_who, len(offsets), len(CAUSES)).sum(axis=0)


def _replica_causes(
    rep: _Sim, cust: np.ndarray, orig: np.ndarray, close: np.ndarray, as_of_ns: int, copies: int
) -> np.ndarray:
    """Per copy, the cause index (CAUSES order) from the last loan to close among those open at
    t: its recorded reason (a close at the contractual term is matured), else lapsed."""
    open_t = np.flatnonzero((orig <= as_of_ns) & (close > as_of_ns))
    order = open_t[np.lexsort((open_t, close[open_t], cust[open_t]))]
    last = np.full(copies, -1)
    last[cust[order]] = order  # the last write per copy is its latest close
    matured = rep.loans("close_m") == rep.loans("orig_m") + rep.loans("term")
    code = np.where(matured, _MATURED, rep.loans("reason"))
    by_code = np.array([CAUSES.index(c) for c in ("runoff", "refinanced", "credit_exit")])
    return np.where(last >= 0, by_code[code[np.maximum(last, 0)]], CAUSES.index("lapsed"))
