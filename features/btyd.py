"""BG/NBD "buy till you die" model of repeat originations, written from the paper.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy Way: An
Alternative to the Pareto/NBD Model. *Marketing Science* 24(2), 275-284. Equation numbers below
refer to that paper (eq. 6 likelihood, eq. 10 conditional expectation); the P(alive) expression
is from Fader, Hardie & Lee (2008), "Computing P(alive) Using the BG/NBD Model" (note).

Grain: one element per customer. A "purchase" is a loan origination. All inputs are float arrays
in one time unit (the caller uses months, days / 30.4375):

* ``x``   number of repeat originations (originations - 1), a non-negative integer,
* ``t_x`` time of the last origination since the first (ignored when ``x == 0``),
* ``T``   time from the first origination to the snapshot (``T >= t_x >= 0``).

Model: while active, a customer originates as a Poisson process with rate ``lambda ~ Gamma(r,
alpha)``; after each repeat origination the customer drops out with probability ``p ~ Beta(a,
b)``. The individual likelihood of ``(x, t_x, T)`` is
``(1-p)^x lambda^x e^(-lambda T) + [x > 0] p (1-p)^(x-1) lambda^x e^(-lambda t_x)``; integrating
over the mixing distributions gives eq. (6), evaluated here in log space.

Pure numpy/scipy, no I/O, no loops over customers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

logger = logging.getLogger(__name__)

FloatArray = np.ndarray

# A Gaussian prior on the log-parameters, always added with total strength _PRIOR_STRENGTH (i.e.
# independent of the number of customers, so its pull vanishes as 1/n). Its centre is r = 1,
# alpha = r / (empirical repeat rate), a = 1, b = 3 (mean drop-out probability 0.25). It keeps the
# optimum finite when the MLE does not exist (no customers, all x == 0, a handful of customers).
_PRIOR_STRENGTH = 0.1
_PRIOR_R, _PRIOR_A, _PRIOR_B = 1.0, 1.0, 3.0
_LOG_BOUND = 15.0  # |log parameter| <= 15 (a safety net, far outside any sensible estimate)
_A_ONE_GAP = 1e-7  # eq. (10) has a removable singularity at a == 1


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD parameters: purchase rate ~ Gamma(shape r, rate alpha), drop-out ~ Beta(a, b).

    ``alpha`` is in the caller's time unit (mean rate of an active customer is ``r / alpha``).
    """

    r: float
    alpha: float
    a: float
    b: float


def _as_inputs(x, t_x, T) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate and return 1-D float arrays; ``t_x`` is set to 0 where ``x == 0``."""
    x, t_x, T = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, t_x, T))
    if not (x.ndim == t_x.ndim == T.ndim == 1 and x.shape == t_x.shape == T.shape):
        raise ValueError(f"x, t_x, T must be 1-D of one length, got {x.shape, t_x.shape, T.shape}")
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        raise ValueError("x, t_x, T must be finite")
    if (x < 0).any() or (x != np.round(x)).any():
        raise ValueError("x (repeat originations) must be non-negative integers")
    if (t_x < 0).any() or (t_x > T).any():
        raise ValueError("need 0 <= t_x <= T")
    return x, np.where(x > 0, t_x, 0.0), T


def _log_terms(params: BGNBDParams, x, t_x, T) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Eq. (6) as ``ll = A1 + log(exp(A2) + [x > 0] exp(A3))``; A3 = -inf where x == 0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs = np.maximum(x, 1.0)  # keeps betaln(a + 1, b + x - 1) defined where x == 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    a3 = betaln(a + 1.0, b + xs - 1.0) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
    return a1, a2, np.where(x > 0, a3, -np.inf)


def log_likelihood(params: BGNBDParams, x, t_x, T) -> FloatArray:
    """Per-customer BG/NBD log-likelihood, eq. (6) of Fader, Hardie & Lee (2005).

    ``L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
    + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))``.
    """
    a1, a2, a3 = _log_terms(params, *_as_inputs(x, t_x, T))
    return a1 + np.logaddexp(a2, a3)


def probability_alive(params: BGNBDParams, x, t_x, T) -> FloatArray:
    """P(active at T | x, t_x, T) (Fader, Hardie & Lee 2008 note on P(alive)).

    ``P = 1 / (1 + [x > 0] a / (b+x-1) * ((alpha+T) / (alpha+t_x))^(r+x))``; 1 when x == 0.
    """
    x, t_x, T = _as_inputs(x, t_x, T)
    return _p_alive(params, x, t_x, T)


def _p_alive(params: BGNBDParams, x, t_x, T) -> FloatArray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs = np.maximum(x, 1.0)
    log_odds_dead = (
        np.log(a) - np.log(b + xs - 1.0) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    return np.where(x > 0, expit(-log_odds_dead), 1.0)


def _expected_if_alive(params: BGNBDParams, t: float, x, T) -> FloatArray:
    """Eq. (10) without its P(alive) factor, after Euler's transformation of 2F1.

    With ``z = t / (alpha+T+t)``, ``(1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)`` equals
    ``(1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, which neither overflows for large x nor
    diverges as z -> 1 when a - 1 < r + x (the untransformed 2F1 grows like (1-z)^(a-1-r-x)).
    Where it is not finite (large a, z near 1) the untransformed form, bounded there, is used.
    """
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a
    if abs(a - 1.0) < _A_ONE_GAP:  # 0/0 at a == 1: evaluate just beside it
        a = 1.0 + _A_ONE_GAP
    log1mz = np.log(alpha + T) - np.log(alpha + T + t)
    z = -np.expm1(log1mz)
    c = a + b + x - 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        tail = np.exp((a - 1.0) * log1mz) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        # For large a the Euler form is 0 * inf near z = 1, but there the original 2F1 converges.
        bad = ~np.isfinite(tail)
        if bad.any():
            original = np.exp((r + x) * log1mz) * hyp2f1(r + x, b + x, c, z)
            tail = np.where(bad, original, tail)
    return c / (a - 1.0) * (1.0 - tail)


def expected_purchases(params: BGNBDParams, t: float, x, t_x, T) -> FloatArray:
    """E[Y(t) | x, t_x, T]: expected originations in (T, T+t], eq. (10) of FHL (2005).

    ``E = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)
    * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))] * P(alive | x, t_x, T)``.
    """
    x, t_x, T = _as_inputs(x, t_x, T)
    return _expected(params, t, x, T, _p_alive(params, x, t_x, T))


def _check_horizon(t: float) -> None:
    if not (np.isfinite(t) and t >= 0):
        raise ValueError(f"t (horizon) must be finite and >= 0, got {t}")


def _expected(params: BGNBDParams, t: float, x, T, p_alive) -> FloatArray:
    _check_horizon(t)
    g = _expected_if_alive(params, float(t), x, T)
    bad = ~np.isfinite(g)
    if bad.any():  # scipy's 2F1 fails only for extreme parameters (a > 40, z -> 1): use a bound
        logger.warning("BG/NBD: 2F1 not finite for %d customers", int(bad.sum()))
        g = np.where(bad, _expected_bound(params, t, x, T), g)
    return np.maximum(g, 0.0) * p_alive


def _expected_bound(params: BGNBDParams, t: float, x, T) -> FloatArray:
    """min(E[lambda | x, T] t, E[1/p | x]): no drop-out, or no time limit (eq. 10 as t -> inf).

    An upper bound of E[Y(t) | alive]; tight when t / (alpha + T) is large, where it is used.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    rate_bound = (r + x) / (alpha + T) * t
    if a <= 1.0:
        return rate_bound
    return np.minimum(rate_bound, (a + b + x - 1.0) / (a - 1.0))


@dataclass(frozen=True)
class _Data:
    """Distinct (x, t_x, T) triples with summed weights ``w``, and two small lookup grids.

    ``ux[ix] == x`` (distinct repeat counts) and ``times[iT] == T``, ``times[it] == t_x``
    (distinct time points: on a day grid there are a few thousand, whatever the customer count).
    """

    x: FloatArray
    w: FloatArray
    ux: FloatArray
    ix: np.ndarray
    wx: FloatArray  # total weight per distinct x
    times: FloatArray
    iT: np.ndarray
    it: np.ndarray
    mean_T: float


def _first_of_runs(*sorted_cols: FloatArray) -> np.ndarray:
    """Mask of the rows that start a run of equal values in lexicographically sorted columns."""
    new = np.zeros(sorted_cols[0].size, dtype=bool)
    new[:1] = True
    for col in sorted_cols:
        new[1:] |= np.diff(col) != 0
    return new


def _compress(x, t_x, T, w) -> _Data:
    """Merge identical (x, t_x, T) triples, index distinct x values and time points.

    Rows are sorted by one int64 key (x, t_x index, T index) when it fits, else by lexsort.
    """
    times, inverse = np.unique(np.concatenate([T, t_x]), return_inverse=True)
    iT, it = np.split(inverse.ravel(), 2)
    xi, nt = x.astype(np.int64), max(times.size, 1)
    if (int(xi.max(initial=0)) + 1) * nt * nt < 2**62:
        order = np.argsort((xi * nt + it) * nt + iT)
    else:
        order = np.lexsort((iT, it, xi))
    xs, its, iTs = x[order], it[order], iT[order]
    new = _first_of_runs(xs, its, iTs)
    wc = np.bincount(np.cumsum(new) - 1, weights=w[order], minlength=int(new.sum()))
    xc = xs[new]
    new_x = _first_of_runs(xc)
    ix = np.cumsum(new_x) - 1
    wx = np.bincount(ix, weights=wc, minlength=int(new_x.sum()))
    mean_T = float(np.sum(w * T) / max(np.sum(w), 1.0))
    return _Data(xc, wc, xc[new_x], ix, wx, times, iTs[new], its[new], mean_T)


def _prior_centre(data: _Data) -> FloatArray:
    """Log of the prior centre; alpha matches the empirical repeat rate (+1 pseudo-count)."""
    wsum = np.sum(data.w)
    rate = (np.sum(data.wx * data.ux) + 1.0) / (wsum * data.mean_T + 1.0)
    return np.log([_PRIOR_R, _PRIOR_R / rate, _PRIOR_A, _PRIOR_B])


def _objective(theta, data: _Data, centre, ridge) -> tuple[float, FloatArray]:
    """Weighted mean negative log-likelihood + ridge on log-params, and its analytic gradient.

    Eq. (6) again, arranged for speed: gamma/beta/digamma terms depend on x alone and
    log(alpha + time) on the time point alone, so they are evaluated on the small grids and
    gathered; per customer one exp, one log1p and one division remain. ``s`` is the share of
    the "dropped out right after t_x" term in each customer's likelihood.
    """
    r, alpha, a, b = np.exp(theta)
    ux, ix, w, wx, wsum = data.ux, data.ix, data.w, data.wx, np.sum(data.w)
    uxs = np.maximum(ux, 1.0)  # keeps B(a + 1, b + x - 1) defined where x == 0
    c_alive = gammaln(r + ux) - gammaln(r) + r * np.log(alpha) + betaln(a, b + ux) - betaln(a, b)
    c_dead = np.where(ux > 0, betaln(a + 1.0, b + uxs - 1.0) - betaln(a, b + ux), -np.inf)
    log_time, inv_time = np.log(alpha + data.times), 1.0 / (alpha + data.times)
    rx = r + data.x
    log_at, log_ax = log_time[data.iT], log_time[data.it]
    gap = c_dead[ix] - rx * (log_ax - log_at)  # log(dead term / alive term)
    e = np.exp(-np.abs(gap))
    ll = c_alive[ix] - rx * log_at + np.maximum(gap, 0.0) + np.log1p(e)
    s = np.where(gap > 0, 1.0, e) / (1.0 + e)
    ws = w * s
    sx = np.bincount(ix, weights=ws, minlength=ux.size)  # weight of the dead term per x
    d_r = np.sum(wx * digamma(r + ux)) + wsum * (np.log(alpha) - digamma(r))
    d_r -= np.sum(w * log_at) + np.sum(ws * (log_ax - log_at))
    inv_at = inv_time[data.iT]
    d_alpha = wsum * r / alpha - np.sum(w * rx * inv_at)
    d_alpha -= np.sum(ws * rx * (inv_time[data.it] - inv_at))
    psi_abx = np.sum(wx * digamma(a + b + ux))
    d_a = np.sum(sx) * (digamma(a + 1.0) - digamma(a)) - psi_abx + wsum * digamma(a + b)
    d_b = np.sum((wx - sx) * digamma(b + ux) + sx * digamma(b + uxs - 1.0)) - psi_abx
    d_b += wsum * (digamma(a + b) - digamma(b))
    grad = -np.array([d_r, d_alpha, d_a, d_b]) * np.exp(theta) / wsum
    dev = theta - centre
    value = -np.sum(w * ll) / wsum + ridge * float(np.sum(dev * dev))
    return float(value), grad + 2.0 * ridge * dev


def fit_bgnbd(x, t_x, T, weights=None, penalizer: float = 0.0) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters (eq. 6 summed over customers).

    Minimises ``-mean_w(ll) + (penalizer + 0.1 / sum(w)) * ||log theta - log theta_0||^2`` with
    L-BFGS-B on the log-parameters and the analytic gradient. ``weights`` are frequency weights
    (counts). ``penalizer`` is per customer, like lifetimes', but shrinks the log-parameters to
    the prior centre theta_0 (r=1, alpha=r/empirical rate, a=1, b=3) rather than to zero. The
    fixed 0.1 total makes the optimum exist for degenerate data: with no customers (or all
    weights zero) the prior centre is returned; with all x == 0, a and b stay at the prior (the
    likelihood ignores them). Identical (x, t_x, T) triples are fitted once with summed weights.
    """
    x, t_x, T = _as_inputs(x, t_x, T)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != x.shape or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite, non-negative and shaped like x")
    if penalizer < 0 or not np.isfinite(penalizer):
        raise ValueError(f"penalizer must be finite and >= 0, got {penalizer}")
    data = _compress(x, t_x, T, w)
    wsum = float(data.w.sum())
    centre = _prior_centre(data)
    if wsum == 0.0:
        return BGNBDParams(*np.exp(centre).tolist())
    ridge = penalizer + _PRIOR_STRENGTH / wsum
    result = minimize(
        _objective,
        centre,
        args=(data, centre, ridge),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
        options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
    )
    theta = result.x if np.isfinite(result.x).all() else centre
    if not result.success:
        logger.warning("BG/NBD fit did not converge: %s", result.message)
    return BGNBDParams(*np.exp(theta).tolist())


def bgnbd_features(x, t_x, T, horizon: float) -> tuple[FloatArray, FloatArray]:
    """Fit BG/NBD on these customers, then (P(alive), expected originations in ``horizon``).

    Both arrays are aligned with the input; empty input gives empty arrays. Fitting on the same
    customers that are scored is point-in-time safe: (x, t_x, T) only describe the past.
    """
    _check_horizon(horizon)
    x, t_x, T = _as_inputs(x, t_x, T)
    if x.size == 0:
        return np.empty(0), np.empty(0)
    params = fit_bgnbd(x, t_x, T)
    p_alive = _p_alive(params, x, t_x, T)
    return p_alive, _expected(params, horizon, x, T, p_alive)
