"""Tests for features/btyd.py: the BG/NBD model of Fader, Hardie & Lee (2005)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import betaln, gammaln

from features.btyd import (
    BGNBDParams,
    bgnbd_features,
    expected_purchases,
    fit_bgnbd,
    log_likelihood,
    probability_alive,
)

CDNOW = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # FHL (2005), weeks


def simulate(params: BGNBDParams, n: int, seed: int, horizon: float = 0.0):
    """Vectorised BG/NBD draws: (x, t_x, T, alive at T, purchases in (T, T + horizon]).

    Repeat purchases arrive as Poisson(lambda); the customer drops out right after the J-th repeat
    purchase, J ~ Geometric(p). Given N(T) = n arrivals on (0, T], the k-th arrival time is
    T * Beta(k, n - k + 1), so no per-customer loop is needed.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    T = rng.uniform(20.0, 40.0, n)
    drop_at = rng.geometric(p)
    arrivals = rng.poisson(lam * T)
    x = np.minimum(arrivals, drop_at)
    k = np.maximum(x, 1)
    t_x = np.where(x > 0, T * rng.beta(k, np.maximum(arrivals - k + 1, 1)), 0.0)
    alive = arrivals < drop_at
    future = np.where(alive, np.minimum(rng.poisson(lam * horizon), drop_at - arrivals), 0)
    return x.astype(float), t_x, T, alive, future


def _gamma_moment(params: BGNBDParams, x: int, s):
    """E[lam^x exp(-lam s)] for lam ~ Gamma(r, alpha): the textbook gamma integral."""
    r, alpha = params.r, params.alpha
    return np.exp(gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + s))


def _over_p(params: BGNBDParams, integrand) -> float:
    """Integrate integrand(p) against the Beta(a, b) density by adaptive quadrature."""
    value, _ = integrate.quad(
        integrand, 0.0, 1.0, weight="alg", wvar=(params.a - 1.0, params.b - 1.0), epsabs=0.0
    )
    return value * np.exp(-betaln(params.a, params.b))


def _brute_force(params: BGNBDParams, x: int, t_x: float, T: float, t: float):
    """(likelihood, P(alive), E[Y(t)]) from the individual-level model, without eq. (6)-(10).

    Individual level: L = (1-p)^x lam^x e^(-lam T) + [x > 0] p (1-p)^(x-1) lam^x e^(-lam t_x),
    of which the first term is "still alive"; an alive customer buys (1 - e^(-lam p t)) / p in
    the next t. lam is integrated in closed form, p by quadrature (no beta function, no 2F1).
    """

    def like(p):
        dead = p * (1 - p) ** (x - 1) * _gamma_moment(params, x, t_x) if x > 0 else 0.0
        return (1 - p) ** x * _gamma_moment(params, x, T) + dead

    def alive(p):
        return (1 - p) ** x * _gamma_moment(params, x, T)

    def future(p):
        if p == 0.0:  # the limit of the quotient below
            return t * _gamma_moment(params, x + 1, T)
        later = _gamma_moment(params, x, T) - _gamma_moment(params, x, T + p * t)
        return (1 - p) ** x * later / p

    likelihood = _over_p(params, like)
    return likelihood, _over_p(params, alive) / likelihood, _over_p(params, future) / likelihood


# --- closed forms checked against the paper and against brute-force integration -----------------


def test_paper_example_customer_expected_purchases():
    # FHL (2005), section 5: x = 2, t_x = 30.43, T = 38.86 weeks -> E[Y(39)] = 1.226.
    e = expected_purchases(CDNOW, 39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert e[0] == pytest.approx(1.226, abs=5e-4)


def test_p_alive_is_one_without_repeat_purchases():
    T = np.array([0.0, 1.0, 38.0, 1e4])
    np.testing.assert_array_equal(probability_alive(CDNOW, np.zeros(4), np.zeros(4), T), 1.0)


@pytest.mark.parametrize(
    ("params", "x", "t_x", "T", "t"),
    [
        (BGNBDParams(0.7, 5.0, 1.3, 2.5), 0, 0.0, 30.0, 12.0),
        (BGNBDParams(0.7, 5.0, 1.3, 2.5), 1, 5.0, 30.0, 12.0),
        (BGNBDParams(0.7, 5.0, 1.3, 2.5), 4, 28.0, 35.0, 12.0),
        (BGNBDParams(2.0, 1.5, 4.0, 0.6), 12, 3.0, 40.0, 100.0),  # b < 1, long-gone buyer
        (CDNOW, 2, 30.43, 38.86, 39.0),  # a < 1: 2F1 taken through its analytic continuation
        (CDNOW, 40, 38.0, 38.86, 3.0),
    ],
)
def test_closed_forms_match_brute_force_integration(params, x, t_x, T, t):
    likelihood, p_alive, expected = _brute_force(params, x, t_x, T, t)
    assert log_likelihood(params, [x], [t_x], [T])[0] == pytest.approx(np.log(likelihood), 1e-9)
    assert probability_alive(params, [x], [t_x], [T])[0] == pytest.approx(p_alive, rel=1e-8)
    assert expected_purchases(params, t, [x], [t_x], [T])[0] == pytest.approx(expected, rel=1e-7)


def test_a_equal_one_is_continuous():
    args = (10.0, np.array([0.0, 3.0]), np.array([0.0, 7.0]), np.array([20.0, 20.0]))
    at_one = expected_purchases(BGNBDParams(0.5, 4.0, 1.0, 2.0), *args)
    near = expected_purchases(BGNBDParams(0.5, 4.0, 1.0 + 1e-4, 2.0), *args)
    assert np.isfinite(at_one).all()
    np.testing.assert_allclose(at_one, near, rtol=1e-3)


# --- shape properties --------------------------------------------------------------------------


def test_p_alive_in_unit_interval_and_increasing_in_recency():
    x = np.full(50, 3.0)
    t_x = np.linspace(0.0, 30.0, 50)
    p = probability_alive(CDNOW, x, t_x, np.full(50, 30.0))
    assert ((p >= 0) & (p <= 1)).all()
    assert (np.diff(p) > 0).all()


def test_expected_purchases_nonnegative_and_increasing_in_t():
    x, t_x, T = simulate(CDNOW, 500, seed=1)[:3]
    horizons = [0.0, 1.0, 5.0, 20.0, 100.0, 1000.0]
    e = np.stack([expected_purchases(CDNOW, t, x, t_x, T) for t in horizons])
    np.testing.assert_array_equal(e[0], 0.0)
    assert (e >= 0).all()
    assert (np.diff(e, axis=0) > 0).all()


def test_population_averages_match_simulation():
    # E[P(alive | data)] = P(alive) and E[E[Y(t) | data]] = E[Y(t)]: unbiased on average.
    params = BGNBDParams(r=0.8, alpha=6.0, a=0.9, b=3.0)
    x, t_x, T, alive, future = simulate(params, 40_000, seed=2, horizon=15.0)
    assert probability_alive(params, x, t_x, T).mean() == pytest.approx(alive.mean(), abs=0.01)
    e = expected_purchases(params, 15.0, x, t_x, T)
    assert e.mean() == pytest.approx(future.mean(), rel=0.03)
    wrong = BGNBDParams(r=0.8, alpha=6.0, a=0.9, b=1.5)
    assert probability_alive(wrong, x, t_x, T).mean() < alive.mean() - 0.03


# --- fitting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 4])
def test_fit_recovers_simulated_parameters(seed):
    true = BGNBDParams(r=0.8, alpha=6.0, a=0.9, b=3.0)
    x, t_x, T = simulate(true, 20_000, seed=seed)[:3]
    fitted = fit_bgnbd(x, t_x, T)
    for name, tol in [("r", 0.15), ("alpha", 0.2), ("a", 0.3), ("b", 0.4)]:
        assert getattr(fitted, name) == pytest.approx(getattr(true, name), rel=tol), name
    assert log_likelihood(fitted, x, t_x, T).sum() >= log_likelihood(true, x, t_x, T).sum()


def test_fit_with_weights_equals_fit_on_repeated_rows():
    x, t_x, T = simulate(CDNOW, 3_000, seed=5)[:3]
    counts = np.random.default_rng(0).integers(1, 4, x.size)
    weighted = fit_bgnbd(x, t_x, T, weights=counts.astype(float))
    repeated = fit_bgnbd(*(np.repeat(v, counts) for v in (x, t_x, T)))
    np.testing.assert_allclose(
        [weighted.r, weighted.alpha, weighted.a, weighted.b],
        [repeated.r, repeated.alpha, repeated.a, repeated.b],
        rtol=1e-4,
    )


def test_penalizer_shrinks_towards_prior():
    x, t_x, T = simulate(CDNOW, 2_000, seed=6)[:3]
    free, shrunk = fit_bgnbd(x, t_x, T), fit_bgnbd(x, t_x, T, penalizer=10.0)
    assert abs(np.log(shrunk.a)) < abs(np.log(free.a))  # prior centre a = 1


# --- degenerate inputs -------------------------------------------------------------------------


def _assert_sane(params: BGNBDParams) -> None:
    values = np.array([params.r, params.alpha, params.a, params.b])
    assert np.isfinite(values).all() and (values > 0).all()


@pytest.mark.parametrize(
    ("x", "t_x", "T"),
    [
        ([0.0] * 5, [0.0] * 5, [0.0] * 5),  # all zeros, T = 0 too
        ([0.0] * 5, [0.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0]),  # nobody repeats
        ([2.0], [3.0], [10.0]),  # a single customer
        ([0.0], [0.0], [10.0]),
        ([500.0, 1.0, 0.0], [99.0, 2.0, 0.0], [100.0, 100.0, 100.0]),  # large x
        ([3.0, 3.0], [5.0, 5.0], [5.0, 5.0]),  # purchase at the snapshot itself
    ],
)
def test_degenerate_inputs_give_finite_output(x, t_x, T):
    params = fit_bgnbd(x, t_x, T)
    _assert_sane(params)
    p_alive, expected = bgnbd_features(x, t_x, T, horizon=12.0)
    assert np.isfinite(p_alive).all() and np.isfinite(expected).all()
    assert ((p_alive >= 0) & (p_alive <= 1)).all() and (expected >= 0).all()


def test_extreme_values_stay_finite():
    x = np.array([0.0, 1.0, 1e3, 1e5, 20.0])
    t_x = np.array([0.0, 1e-9, 50.0, 99.0, 0.0])
    T = np.array([1e6, 1e-9, 100.0, 100.0, 100.0])
    for params in [CDNOW, BGNBDParams(50.0, 0.01, 20.0, 0.05), BGNBDParams(0.01, 1e4, 0.02, 50)]:
        for t in [0.5, 12.0, 1e4]:
            e = expected_purchases(params, t, x, t_x, T)
            assert np.isfinite(e).all() and (e >= 0).all()
        assert np.isfinite(log_likelihood(params, x, t_x, T)).all()


def test_empty_input():
    p_alive, expected = bgnbd_features(np.array([]), np.array([]), np.array([]), horizon=6.0)
    assert p_alive.shape == expected.shape == (0,)
    _assert_sane(fit_bgnbd([], [], []))


@pytest.mark.parametrize(
    ("x", "t_x", "T"),
    [
        ([-1.0], [0.0], [1.0]),
        ([1.5], [0.5], [1.0]),
        ([1.0], [2.0], [1.0]),
        ([1.0], [-0.5], [1.0]),
        ([np.nan], [0.0], [1.0]),
        ([1.0, 2.0], [0.5], [1.0]),
    ],
)
def test_bad_inputs_raise(x, t_x, T):
    with pytest.raises(ValueError):
        fit_bgnbd(x, t_x, T)


def test_objective_gradient_matches_finite_differences():
    from scipy.optimize import approx_fprime

    from features.btyd import _compress, _objective

    x, t_x, T = simulate(CDNOW, 300, seed=7)[:3]
    data = _compress(x, t_x, T, np.random.default_rng(1).uniform(0.5, 2.0, x.size))
    centre, theta = np.log([1.0, 4.0, 1.0, 3.0]), np.log([0.5, 3.0, 0.8, 2.5])
    value, grad = _objective(theta, data, centre, 0.01)
    numeric = approx_fprime(theta, lambda th: _objective(th, data, centre, 0.01)[0], 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-7)


@settings(max_examples=300, deadline=None)
@given(
    params=st.builds(BGNBDParams, *[st.floats(1e-2, 1e2)] * 4),
    x=st.integers(0, 2_000),
    recency=st.floats(0.0, 1.0),
    T=st.floats(0.0, 2_000.0),
    t=st.floats(0.0, 240.0),
)
def test_outputs_stay_in_range_for_any_parameters(params, x, recency, T, t):
    args = ([float(x)], [recency * T if x > 0 else 0.0], [T])
    p_alive = probability_alive(params, *args)[0]
    expected = expected_purchases(params, t, *args)[0]
    assert 0.0 <= p_alive <= 1.0
    assert np.isfinite(expected) and expected >= 0.0
    assert np.isfinite(log_likelihood(params, *args)[0])


def test_bad_horizon_raises():
    with pytest.raises(ValueError):
        bgnbd_features([1.0], [0.5], [1.0], horizon=-1.0)


def test_extreme_dropout_parameters_fall_back_to_the_long_horizon_limit():
    # scipy's 2F1 overflows here (a ~ 90, z -> 1); the answer is then E[1/p] = c / (a - 1).
    params = BGNBDParams(r=0.02, alpha=0.02, a=88.5, b=0.06)
    x, T, t = np.array([91.0]), np.array([106.0]), 1e5
    e = expected_purchases(params, t, x, x * 0 + 50.0, T)
    p_alive = probability_alive(params, x, x * 0 + 50.0, T)
    limit = (params.a + params.b + x - 1) / (params.a - 1) * p_alive
    np.testing.assert_allclose(e, limit, rtol=1e-3)


@pytest.mark.parametrize("big_x", [3.0, 2.0**62])  # the second forces the lexsort branch
def test_compress_merges_identical_customers(big_x):
    from features.btyd import _compress

    x = np.array([1.0, 0.0, 1.0, big_x, 1.0])
    t_x = np.array([2.0, 0.0, 2.0, 4.0, 3.0])
    T = np.array([5.0, 5.0, 5.0, 5.0, 5.0])
    data = _compress(x, t_x, T, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    rows = np.stack([data.x, data.times[data.it], data.times[data.iT], data.w], axis=1)
    expected = [[0.0, 0.0, 5.0, 2.0], [1.0, 2.0, 5.0, 4.0], [1.0, 3.0, 5.0, 5.0]]
    np.testing.assert_array_equal(rows, [*expected, [big_x, 4.0, 5.0, 4.0]])
    np.testing.assert_array_equal(data.ux[data.ix], data.x)
    np.testing.assert_array_equal(data.wx, [2.0, 9.0, 4.0])
