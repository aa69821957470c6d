"""numba kernels of the mixture log-likelihood and its gradient.

For every row of ``X`` (N, D), :func:`loglik` returns ``log sum_k w_k N(x_n | mu_k,
(P_k^T P_k)^-1)`` (N,) and the responsibilities (K, N), where ``prec`` holds ``P_k = L_k^-1``,
the inverses of the lower Cholesky factors of the covariances (lower triangular, positive
diagonal). :func:`gradient` needs only the responsibilities and the weighted sufficient
statistics of the residuals ``e = x - mu_k``:

* ``S0_k = sum_n g_n r_nk``, ``S1_k = sum_n g_n r_nk e_n``, ``C_k = sum_n g_n r_nk e_n e_n^T``;
* d/d log w_k = S0_k;
* d/d mu_k = P_k^T P_k S1_k;
* d/d P_k = tril(diag(S0_k / P_k,ii) - P_k C_k).

:func:`masked_loglik` and :func:`masked_gradient` run the same kernels pattern by pattern on
rows grouped by missingness pattern (:mod:`bayesgmm.likelihood.missing`), each pattern on its
observed columns with its own factors: a row costs what a complete row of its observed
features costs, and the gradient comes from each (pattern, component)'s sufficient statistics.

The points are processed in blocks of :data:`BLOCK` with the block's coordinates in rows, so
every inner loop runs over points and compiles to SIMD instructions; ``exp`` and ``log`` are
written out (:func:`_exp_nonpositive`, :func:`_log_normal`) because numba's call the scalar C
library (no SVML here) and cost more than the rest of the forward pass. Both are accurate to a
few ulp. :mod:`bayesgmm.likelihood.ops` wraps these kernels in PyTensor Ops;
:mod:`bayesgmm.likelihood.reference` is the NumPy oracle they are tested against.

No fastmath, here or (through :func:`bayesgmm.likelihood.ops.exact_numba`) in the PyTensor
graphs bayesgmm compiles with numba: numba keeps several copies of a compiled function, its
own and one inside every function it is linked into (PyTensor's wrapper, the graph, nutpie's
callback), optimised again there. A process that compiles calls the function's own copy, one
that loads the graph from the on-disk cache runs the copy inside it, and flags that let LLVM
choose the rounding ("contract", "reassoc", "arcp", "afn") let the copies differ in the last
bit, which NUTS turns into different draws from the same seed. Fused multiply-adds are written
out (:func:`_fma`), and the sums over points run in :data:`BLOCK` interleaved partial sums, a
fixed order that vectorises without "reassoc".
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = ["BLOCK", "LOG_2PI", "loglik_kernel", "gradient_kernel", "loglik", "gradient",
           "masked_loglik", "masked_gradient", "t_loglik", "t_gradient",
           "student_t_log_norm", "T_STIRLING_DOF",
           "pointwise_log_likelihood_numba", "predictive_rows"]

#: Points per block: the block's residuals (D x BLOCK) stay in L1 cache.
BLOCK = 64

LOG_2PI = float(np.log(2.0 * np.pi))
_INV_LN2 = float(1.0 / np.log(2.0))
_LN2 = float(np.log(2.0))
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (Cody and Waite)
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = float(np.sqrt(2.0))
_MANTISSA = np.int64((1 << 52) - 1)
_EXPONENT_ZERO = np.int64(1023 << 52)


# Taylor coefficients 1/13!, ..., 1/1!, 1/0! of exp, highest first; 1/21, 1/19, ..., 1/1 of
# atanh(s)/s as a series in s^2.
_EXP_COEFFICIENTS = tuple(1.0 / math.factorial(j) for j in range(13, -1, -1))
# (x - log(1 + x)) / x^2 = sum_j (-1)^j x^j / (j + 2), highest first (to x^16: truncation
# below 1e-18 relative for x < 0.1).
_X_MINUS_LOG1P_COEFFICIENTS = tuple((-1.0) ** j / (j + 2) for j in range(16, -1, -1))
#: From this many degrees of freedom on, the t density's normalising constant is taken from
#: Stirling's series (the difference of two log-gamma values of size nu log nu loses digits).
T_STIRLING_DOF = 100.0
_ATANH_COEFFICIENTS = tuple(1.0 / (2 * j + 1) for j in range(10, -1, -1))


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma``; vectorises like ``*`` and ``+``).

    Written out because the kernels compile without fastmath (see the module docstring).
    """
    if not all(t == types.float64 for t in (a, b, c)):
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic(
            "llvm.fma", [double], ir.FunctionType(double, [double, double, double]))
        return builder.call(fn, args)

    return sig, codegen


@numba.njit(inline="always", cache=True)
def _horner(coefficients, x):
    """The polynomial with ``coefficients`` (highest degree first) at ``x``."""
    p = 0.0
    for c in coefficients:
        p = _fma(p, x, c)
    return p


@numba.njit(inline="always", cache=True)
def _sum_lanes(x):
    """``sum(x)`` added in order (the partial sums of :func:`gradient_kernel`)."""
    total = 0.0
    for v in x:
        total += v
    return total


@numba.njit(inline="always", cache=True)
def _exp_nonpositive(x, out, bits, nb):
    """``out[:nb] = exp(x[:nb])`` for ``x <= 0`` (0 below -708, where exp < 3.3e-308).

    Range reduction ``x = k ln 2 + r``, ``|r| <= ln(2)/2``, a degree-13 Taylor polynomial
    (truncation error below 1e-17), and ``2^k`` built in the exponent bits of ``bits``.
    """
    scale = bits.view(np.float64)
    for i in range(nb):
        v = max(x[i], -708.0)
        kf = np.floor(v * _INV_LN2 + 0.5)
        r = _fma(-kf, _LN2_LO, _fma(-kf, _LN2_HI, v))
        p = _horner(_EXP_COEFFICIENTS, r)
        bits[i] = (np.int64(kf) + 1023) << 52
        out[i] = p * scale[i] if x[i] >= -708.0 else 0.0
        if x[i] != x[i]:  # NaN in, NaN out
            out[i] = x[i]


@numba.njit(inline="always", cache=True)
def _log_normal(x, out, bits, nb):
    """``out[:nb] = log(x[:nb])`` for positive normal doubles (here sums in [1, K]).

    ``x = m 2^e`` with ``m`` in [sqrt(1/2), sqrt(2)], and ``log m = 2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``, by its series to ``s^21``.
    """
    xbits = x.view(np.int64)
    mant = bits.view(np.float64)
    for i in range(nb):
        b = xbits[i]
        e = (b >> 52) - 1023
        bits[i] = (b & _MANTISSA) | _EXPONENT_ZERO
        m = mant[i]
        big = m > _SQRT2
        m = m * 0.5 if big else m
        ef = np.float64(e + 1) if big else np.float64(e)
        s = (m - 1.0) / (m + 1.0)
        s2 = s * s
        p = _horner(_ATANH_COEFFICIENTS, s2)
        out[i] = _fma(2.0 * s, p, ef * _LN2)


@numba.njit(inline="always", cache=True)
def _load_block(X, cols, start, nb, xb):
    """Columns ``cols`` of rows ``start:start + nb`` of ``X`` into the columns of ``xb``."""
    for b in range(nb):
        for j in range(cols.shape[0]):
            xb[j, b] = X[start + b, cols[j]]


@numba.njit(inline="always", cache=True)
def _residuals(xb, mean, nb, eb):
    """``eb[:, :nb] = xb[:, :nb] - mean[:, None]``."""
    for j in range(mean.shape[0]):
        mj = mean[j]
        for b in range(nb):
            eb[j, b] = xb[j, b] - mj


@numba.njit(cache=True)
def _component_constants(log_weights, means, prec, offset):
    """``log w_k + log|P_k| + offset``; NaN when a parameter is outside the support.

    ``offset``: ``-D/2 log 2 pi`` for Gaussian components.
    """
    k, d = means.shape
    const = np.empty(k)
    for c in range(k):
        s = log_weights[c] + offset
        ok = log_weights[c] < np.inf and log_weights[c] == log_weights[c]
        for i in range(d):
            ok = ok and np.isfinite(means[c, i]) and prec[c, i, i] > 0.0
            for j in range(i + 1):
                ok = ok and np.isfinite(prec[c, i, j])
        for i in range(d):
            s += np.log(prec[c, i, i]) if ok else 0.0
        const[c] = s if ok else np.nan
    return const


@numba.njit(inline="always", cache=True)
def _block_quadratic(eb, prec, c, nb, q, z):
    """``q[:nb] = |P_c e|^2`` for the residuals in the columns of ``eb``."""
    d = eb.shape[0]
    for b in range(nb):
        q[b] = 0.0
    for i in range(d):
        for b in range(nb):
            z[b] = 0.0
        for j in range(i + 1):
            pij = prec[c, i, j]
            for b in range(nb):
                z[b] = _fma(pij, eb[j, b], z[b])
        for b in range(nb):
            q[b] = _fma(z[b], z[b], q[b])


@numba.njit(inline="always", cache=True)
def _block_normalise(lp, nb, start, out, resp, top, total, tmp, tmp2, bits):
    """A block's log-likelihood and responsibilities from its joint log densities.

    ``lp`` (K, BLOCK) for the block of rows from ``start``: ``out`` gets their logsumexp
    over components, ``resp`` the responsibilities (``lp`` is overwritten).
    """
    k = lp.shape[0]
    for b in range(nb):
        top[b] = lp[0, b]
    for c in range(1, k):
        for b in range(nb):
            top[b] = max(top[b], lp[c, b])
    for b in range(nb):
        total[b] = 0.0
    for c in range(k):
        for b in range(nb):
            tmp[b] = lp[c, b] - top[b]
        _exp_nonpositive(tmp, tmp2, bits, nb)
        for b in range(nb):
            lp[c, b] = tmp2[b]
            total[b] += tmp2[b]
    _log_normal(total, tmp, bits, nb)
    for b in range(nb):
        out[start + b] = top[b] + tmp[b]
        total[b] = 1.0 / total[b]
    for c in range(k):
        for b in range(nb):
            resp[c, start + b] = lp[c, b] * total[b]


@numba.njit(inline="always", cache=True)
def _segment_loglik(X, cols, first, stop, log_weights, means, prec, out, resp):
    """:func:`loglik_kernel` for rows ``first:stop`` of ``X`` on its columns ``cols``.

    ``means`` (K, M) and ``prec`` (K, M, M) are those of the ``M = len(cols)`` columns.
    """
    d = cols.shape[0]
    k = means.shape[0]
    const = _component_constants(log_weights, means, prec, -0.5 * d * LOG_2PI)
    outside = np.isnan(const).any()
    xb = np.empty((d, BLOCK))
    eb = np.empty((d, BLOCK))
    lp = np.empty((k, BLOCK))
    q = np.empty(BLOCK)
    z = np.empty(BLOCK)
    top = np.empty(BLOCK)
    total = np.empty(BLOCK)
    tmp = np.empty(BLOCK)
    tmp2 = np.empty(BLOCK)
    bits = np.empty(BLOCK, np.int64)
    for start in range(first, stop, BLOCK):
        nb = min(BLOCK, stop - start)
        _load_block(X, cols, start, nb, xb)
        for c in range(k):
            _residuals(xb, means[c], nb, eb)
            _block_quadratic(eb, prec, c, nb, q, z)
            cc = const[c]
            for b in range(nb):
                lp[c, b] = _fma(-0.5, q[b], cc)
        _block_normalise(lp, nb, start, out, resp, top, total, tmp, tmp2, bits)
        if outside:
            for b in range(nb):
                out[start + b] = np.nan


@numba.njit(cache=True)
def loglik_kernel(X, log_weights, means, prec, out, resp):
    """Fill ``out`` (N,) and ``resp`` (K, N): log-likelihood and responsibilities.

    One row of ``X`` (N, D) per point; see the module docstring.
    """
    cols = np.arange(X.shape[1])
    _segment_loglik(X, cols, 0, X.shape[0], log_weights, means, prec, out, resp)


@numba.njit(inline="always", cache=True)
def _segment_sums(X, cols, first, stop, means, resp, g):
    """The weighted sufficient statistics of rows ``first:stop`` of ``X`` on columns ``cols``.

    ``S0`` (K,), ``S1`` (K, M) and ``C`` (K, M, M) of the module docstring, for ``means``
    (K, M) of the ``M = len(cols)`` columns; ``resp`` (K, N) and ``g`` (N,) are indexed by
    row.
    """
    d = cols.shape[0]
    k = means.shape[0]
    # The sums over points accumulate elementwise in BLOCK partial sums (point n in partial
    # sum n % BLOCK), added up at the end: a fixed order of additions that vectorises
    # without fastmath.
    a0 = np.zeros((k, BLOCK))
    a1 = np.zeros((k, d, BLOCK))
    a2 = np.zeros((k, d, d, BLOCK))
    xb = np.empty((d, BLOCK))
    eb = np.empty((d, BLOCK))
    w = np.empty(BLOCK)
    we = np.empty(BLOCK)
    for start in range(first, stop, BLOCK):
        nb = min(BLOCK, stop - start)
        _load_block(X, cols, start, nb, xb)
        for c in range(k):
            acc0 = a0[c]
            for b in range(nb):
                w[b] = g[start + b] * resp[c, start + b]
                acc0[b] += w[b]
            _residuals(xb, means[c], nb, eb)
            _add_moments(eb, w, a1[c], a2[c], we, nb)
    return _finish_sums(a0, a1, a2)


@numba.njit(inline="always", cache=True)
def _add_moments(eb, w, a1, a2, we, nb):
    """Add a block's weighted residuals to the partial sums of ``S1`` and ``C``.

    ``w e`` to ``a1`` (M, BLOCK), the lower triangle of ``w e e^T`` to ``a2`` (M, M,
    BLOCK), for the residuals in the columns of ``eb``.
    """
    for i in range(eb.shape[0]):
        acc1 = a1[i]
        for b in range(nb):
            we[b] = w[b] * eb[i, b]
            acc1[b] += we[b]
        for j in range(i + 1):
            acc2 = a2[i, j]
            for b in range(nb):
                acc2[b] = _fma(we[b], eb[j, b], acc2[b])


@numba.njit(inline="always", cache=True)
def _finish_sums(a0, a1, a2):
    """``S0`` (K,), ``S1`` (K, M), ``C`` (K, M, M; symmetric) from their partial sums."""
    k, d = a1.shape[:2]
    s0 = np.zeros(k)
    s1 = np.zeros((k, d))
    s2 = np.zeros((k, d, d))
    for c in range(k):
        s0[c] = _sum_lanes(a0[c])
        for i in range(d):
            s1[c, i] = _sum_lanes(a1[c, i])
            for j in range(i + 1):
                s2[c, i, j] = _sum_lanes(a2[c, i, j])
        for i in range(d):
            for j in range(i + 1, d):
                s2[c, i, j] = s2[c, j, i]
    return s0, s1, s2


@numba.njit(inline="always", cache=True)
def _mean_gradient(prec, s1, c, out):
    """``out = P_c^T P_c S1_c``: the gradient with respect to component c's mean."""
    d = s1.shape[1]
    z = np.empty(d)
    for i in range(d):
        acc = 0.0
        for j in range(i + 1):
            acc += prec[c, i, j] * s1[c, j]
        z[i] = acc
    for j in range(d):
        acc = 0.0
        for i in range(j, d):
            acc += prec[c, i, j] * z[i]
        out[j] = acc


@numba.njit(cache=True)
def gradient_kernel(X, means, prec, resp, g, g_log_weights, g_means, g_prec):
    """Gradient of ``sum_n g_n loglik_n`` from the responsibilities.

    With respect to the log-weights, the means and ``P`` (lower triangle; the upper
    triangle gets zeros).
    """
    k, d = means.shape
    s0, s1, s2 = _segment_sums(X, np.arange(d), 0, X.shape[0], means, resp, g)
    for c in range(k):
        g_log_weights[c] = s0[c]
        _prec_gradient(prec, s0, s2, c, g_prec[c])
        _mean_gradient(prec, s1, c, g_means[c])


@numba.njit(inline="always", cache=True)
def _prec_gradient(prec, s0, s2, c, out):
    """``out = tril(diag(S0_c / P_c,ii) - P_c C_c)``: the gradient with respect to ``P_c``."""
    d = out.shape[0]
    for i in range(d):
        for j in range(d):
            out[i, j] = 0.0
        for j in range(i + 1):
            acc = 0.0
            for m in range(i + 1):
                acc += prec[c, i, m] * s2[c, m, j]
            out[i, j] = -acc
        out[i, i] += s0[c] / prec[c, i, i]


@numba.njit(cache=True)
def _pattern_columns(masks, p):
    """The observed columns of pattern ``p`` (the nonzero entries of ``masks[p]``)."""
    count = 0
    for j in range(masks.shape[1]):
        count += masks[p, j] != 0
    cols = np.empty(count, np.int64)
    count = 0
    for j in range(masks.shape[1]):
        if masks[p, j] != 0:
            cols[count] = j
            count += 1
    return cols


@numba.njit(cache=True)
def _pattern_parameters(means, chols, cols):
    """The means (K, M), and the inverse factors ``P`` (K, M, M) of the covariances, on ``cols``.

    Component c's covariance on the observed columns ``O`` is ``S = L_O L_O^T`` (``L_O`` the
    rows ``O`` of the lower triangle of ``chols[c]``); ``P`` is the inverse of its lower
    Cholesky factor. NaN in ``P`` when ``S`` is not positive definite (a parameter outside
    the support).
    """
    k = means.shape[0]
    m = cols.shape[0]
    sub_means = np.empty((k, m))
    prec = np.zeros((k, m, m))
    factor = np.zeros((m, m))
    for c in range(k):
        for i in range(m):
            sub_means[c, i] = means[c, cols[i]]
        # The lower Cholesky factor of S, column by column.
        for j in range(m):
            for i in range(j, m):
                r, q = cols[i], cols[j]
                acc = 0.0
                for t in range(q + 1):  # S[i, j] = sum_t L[r, t] L[q, t], t <= q <= r
                    acc += chols[c, r, t] * chols[c, q, t]
                for t in range(j):
                    acc -= factor[i, t] * factor[j, t]
                if i == j:
                    factor[j, j] = np.sqrt(acc) if acc > 0.0 else np.nan
                else:
                    factor[i, j] = acc / factor[j, j]
        # Its inverse, lower triangular, by forward substitution.
        for j in range(m):
            prec[c, j, j] = 1.0 / factor[j, j]
            for i in range(j + 1, m):
                acc = 0.0
                for t in range(j, i):
                    acc += factor[i, t] * prec[c, t, j]
                prec[c, i, j] = -acc / factor[i, i]
    return sub_means, prec


@numba.njit(cache=True)
def masked_loglik(X, starts, masks, log_weights, means, chols):
    """:func:`loglik` for rows grouped by missingness pattern.

    Rows ``starts[p]:starts[p + 1]`` of ``X`` (N, D) observe the columns where ``masks[p]``
    (P, D) is nonzero (their other entries are not read). ``chols`` (K, D, D): the lower
    Cholesky factors of the covariances (their lower triangles are read); each pattern's
    sub-covariances are factorised here, once per evaluation. Returns the per-row
    log-likelihood of the observed entries (N,) and the responsibilities (K, N).
    """
    n = X.shape[0]
    k = means.shape[0]
    out = np.empty(n)
    resp = np.empty((k, n))
    for p in range(masks.shape[0]):
        cols = _pattern_columns(masks, p)
        sub_means, prec = _pattern_parameters(means, chols, cols)
        _segment_loglik(X, cols, starts[p], starts[p + 1], log_weights, sub_means, prec,
                        out, resp)
    return out, resp


@numba.njit(cache=True)
def masked_gradient(X, starts, masks, means, chols, resp, g):
    """Gradients of ``sum_n g_n loglik_n`` for :func:`masked_loglik`.

    With respect to the log-weights (K,), the means (K, D) and ``chols`` (K, D, D; the
    lower triangle, zeros above). Per pattern and component, with ``Q = P^T P`` the inverse
    of the observed sub-covariance ``S = L_O L_O^T``: d/dS = (Q C Q - S0 Q) / 2 and
    d/dL_O = 2 (d/dS) L_O.
    """
    k, d = means.shape
    g_log_weights = np.zeros(k)
    g_means = np.zeros((k, d))
    g_chols = np.zeros((k, d, d))
    for p in range(masks.shape[0]):
        cols = _pattern_columns(masks, p)
        m = cols.shape[0]
        sub_means, prec = _pattern_parameters(means, chols, cols)
        s0, s1, s2 = _segment_sums(X, cols, starts[p], starts[p + 1], sub_means, resp, g)
        gm = np.empty(m)
        q = np.empty((m, m))
        qc = np.empty((m, m))
        gs = np.empty((m, m))
        for c in range(k):
            g_log_weights[c] += s0[c]
            _mean_gradient(prec, s1, c, gm)
            for i in range(m):
                g_means[c, cols[i]] += gm[i]
            for i in range(m):  # Q = P^T P
                for j in range(m):
                    acc = 0.0
                    for t in range(max(i, j), m):
                        acc += prec[c, t, i] * prec[c, t, j]
                    q[i, j] = acc
            for i in range(m):  # Q C
                for j in range(m):
                    acc = 0.0
                    for t in range(m):
                        acc += q[i, t] * s2[c, t, j]
                    qc[i, j] = acc
            for i in range(m):  # (Q C Q - S0 Q) / 2
                for j in range(m):
                    acc = 0.0
                    for t in range(m):
                        acc += qc[i, t] * q[t, j]
                    gs[i, j] = 0.5 * (acc - s0[c] * q[i, j])
            for i in range(m):  # 2 (d/dS) L_O, on the lower triangle
                r = cols[i]
                for t in range(r + 1):
                    acc = 0.0
                    for j in range(m):
                        if t <= cols[j]:
                            acc += gs[i, j] * chols[c, cols[j], t]
                    g_chols[c, r, t] += 2.0 * acc
    return g_log_weights, g_means, g_chols


@numba.njit(cache=True)
def loglik(X, log_weights, means, prec):
    """Per-row log-likelihood (N,) and responsibilities (K, N) of one set of parameters."""
    if log_weights.shape[0] != means.shape[0] or prec.shape[0] != means.shape[0]:
        raise ValueError("loglik: log_weights and prec need one entry per component")
    n = X.shape[0]
    out = np.empty(n)
    resp = np.empty((means.shape[0], n))
    loglik_kernel(np.ascontiguousarray(X), log_weights, means, prec, out, resp)
    return out, resp


@numba.njit(cache=True)
def gradient(X, means, prec, resp, g):
    """Gradients of ``sum_n g_n loglik_n``: log-weights (K,), means (K, D), ``prec``."""
    k, d = means.shape
    g_log_weights = np.empty(k)
    g_means = np.empty((k, d))
    g_prec = np.empty((k, d, d))
    gradient_kernel(np.ascontiguousarray(X), means, prec, resp, g, g_log_weights, g_means,
                    g_prec)
    return g_log_weights, g_means, g_prec


# ------------------------------------------------------------------ Student-t components
@numba.njit(cache=True)
def _t_constants(log_consts, means, prec, dof):
    """``log_consts_k + log|P_k|``; NaN when a parameter is outside the support."""
    const = _component_constants(log_consts, means, prec, 0.0)
    for c in range(const.shape[0]):
        if not 0.0 < dof[c] < np.inf:
            const[c] = np.nan
    return const


@numba.njit(inline="always", cache=True)
def _log1p_ratio(q, nu, nb, tmp, out, bits):
    """``out[:nb] = log(1 + q[:nb] / nu)`` (inf for an infinite ``q``, NaN for NaN).

    To a few ulp, also for ``q / nu`` far below 1 (large ``nu``): ``log(u) x / (u - 1)`` with
    ``u = 1 + x`` rounded (Goldberg's correction; ``x`` where ``u`` rounds to 1).
    """
    for b in range(nb):
        tmp[b] = 1.0 + q[b] / nu
    _log_normal(tmp, out, bits, nb)
    for b in range(nb):
        x = q[b] / nu
        u = tmp[b]
        if not u < np.inf:  # inf or NaN: log of it
            out[b] = u
        elif u == 1.0:
            out[b] = x
        else:
            out[b] = out[b] * (x / (u - 1.0))


@numba.njit(inline="always", cache=True)
def _dof_term(q, nu, d, log1p_x):
    """``u q / nu - log(1 + q / nu)``, ``u = (nu + D) / (nu + q)``, without cancellation.

    Written ``x (D - q) / (nu + q) + (x - log(1 + x))``, ``x = q / nu``, the last term from
    its series for small ``x`` (large ``nu``), where both are of order ``x^2``; 0 for an
    infinite ``q`` (a row of responsibility 0 there).
    """
    x = q / nu
    if not q < np.inf:
        return 0.0
    rest = x * x * _horner(_X_MINUS_LOG1P_COEFFICIENTS, x) if x < 0.1 else x - log1p_x
    return _fma(x, (d - q) / (nu + q), rest)


def student_t_log_norm(dof, n_features: int):
    """``lgamma((nu + D) / 2) - lgamma(nu / 2) - D / 2 log(nu pi)``, elementwise (NumPy).

    Above :data:`T_STIRLING_DOF` from Stirling's series (to its ``z^-5`` term), accurate to
    1e-14 where the difference of log-gamma values loses digits (1e-6 at nu = 1e9).
    """
    from scipy.special import gammaln

    nu = np.asarray(dof, dtype=float)
    h = 0.5 * n_features
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = gammaln(0.5 * nu + h) - gammaln(0.5 * nu) - h * np.log(nu * np.pi)
        a = 0.5 * nu
        series = ((a - 0.5 + h) * np.log1p(h / a) - h * np.log(2.0 * np.pi) - h
                  + stirling_correction(a + h) - stirling_correction(a))
    return np.where(nu > T_STIRLING_DOF, series, direct)


def stirling_correction(z):
    """Stirling's correction ``lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2)``.

    To its ``z^-5`` term (the next is below 1e-16 for z > 50); NumPy or PyTensor arrays.
    """
    inv = 1.0 / z
    inv2 = inv * inv
    return inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))


@numba.njit(cache=True, error_model="numpy")
def t_loglik(X, log_consts, means, prec, dof):
    """:func:`loglik` for Student-t components with ``dof`` (K,) degrees of freedom.

    Component k's log density at ``x`` is ``c_k + log|P_k| - (nu_k + D) / 2 log(1 + q /
    nu_k)``, ``q = |P_k (x - mu_k)|^2``; ``log_consts`` (K,) holds ``c_k = log w_k +
    lgamma((nu_k + D) / 2) - lgamma(nu_k / 2) - D / 2 log(nu_k pi)``
    (:func:`student_t_log_norm`). Returns the per-row log-likelihood (N,), the
    responsibilities (K, N), and what :func:`t_gradient` needs of each row and component
    (K, N): ``u = (nu + D) / (nu + q)``, its weight in the quadratic form, and ``u q / nu -
    log(1 + q / nu)``, twice the derivative in ``nu`` of ``-(nu + D) / 2 log(1 + q / nu)``
    (computed here, with the logarithm the value needs anyway).
    """
    X = np.ascontiguousarray(X)
    n, d = X.shape
    k = means.shape[0]
    if log_consts.shape[0] != k or dof.shape[0] != k or prec.shape[0] != k:
        raise ValueError("t_loglik: log_consts, dof and prec need one entry per component")
    out = np.empty(n)
    resp = np.empty((k, n))
    weight = np.empty((k, n))
    dterm = np.empty((k, n))
    const = _t_constants(log_consts, means, prec, dof)
    outside = np.isnan(const).any()
    cols = np.arange(d)
    xb = np.empty((d, BLOCK))
    eb = np.empty((d, BLOCK))
    lp = np.empty((k, BLOCK))
    q = np.empty(BLOCK)
    z = np.empty(BLOCK)
    top = np.empty(BLOCK)
    total = np.empty(BLOCK)
    tmp = np.empty(BLOCK)
    tmp2 = np.empty(BLOCK)
    bits = np.empty(BLOCK, np.int64)
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        _load_block(X, cols, start, nb, xb)
        for c in range(k):
            _residuals(xb, means[c], nb, eb)
            _block_quadratic(eb, prec, c, nb, q, z)
            nu = dof[c] if not outside else 1.0
            _log1p_ratio(q, nu, nb, tmp, tmp2, bits)
            cc = const[c]
            half = -0.5 * (nu + d)
            for b in range(nb):
                lp[c, b] = _fma(half, tmp2[b], cc)
                weight[c, start + b] = (nu + d) / (nu + q[b])
                dterm[c, start + b] = _dof_term(q[b], nu, d, tmp2[b])
        _block_normalise(lp, nb, start, out, resp, top, total, tmp, tmp2, bits)
        if outside:
            for b in range(nb):
                out[start + b] = np.nan
    return out, resp, weight, dterm


@numba.njit(cache=True, error_model="numpy")
def t_gradient(X, means, prec, resp, weight, dterm, g):
    """Gradients of ``sum_n g_n loglik_n`` for :func:`t_loglik`.

    ``weight`` and ``dterm`` (K, N) as :func:`t_loglik` returns them: the Gaussian formulas
    of the module docstring with ``S1`` and ``C`` weighted by ``g r u`` (``S0`` by ``g
    r``), and d/d nu_k = 1/2 sum_n g_n r_nk dterm_nk (the part through ``log_consts`` is
    the caller's). Returns the gradients with respect to ``log_consts`` (K,), the means
    (K, D), ``prec`` (K, D, D; lower triangle) and ``dof`` (K,). Both kernels compile with
    NumPy's error model: a degree of freedom outside (0, inf) gives NaN, no exception where
    a sampler's step leaves the support.
    """
    X = np.ascontiguousarray(X)
    n, d = X.shape
    k = means.shape[0]
    cols = np.arange(d)
    a0 = np.zeros((k, BLOCK))
    a1 = np.zeros((k, d, BLOCK))
    a2 = np.zeros((k, d, d, BLOCK))
    ad = np.zeros((k, BLOCK))
    xb = np.empty((d, BLOCK))
    eb = np.empty((d, BLOCK))
    w = np.empty(BLOCK)
    we = np.empty(BLOCK)
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        _load_block(X, cols, start, nb, xb)
        for c in range(k):
            acc0 = a0[c]
            accd = ad[c]
            for b in range(nb):
                wb = g[start + b] * resp[c, start + b]
                acc0[b] += wb
                accd[b] = _fma(wb, dterm[c, start + b], accd[b])
                w[b] = wb * weight[c, start + b]
            _residuals(xb, means[c], nb, eb)
            _add_moments(eb, w, a1[c], a2[c], we, nb)
    s0, s1, s2 = _finish_sums(a0, a1, a2)
    g_log_consts = s0
    g_means = np.empty((k, d))
    g_prec = np.empty((k, d, d))
    g_dof = np.empty(k)
    for c in range(k):
        _prec_gradient(prec, s0, s2, c, g_prec[c])
        _mean_gradient(prec, s1, c, g_means[c])
        g_dof[c] = 0.5 * _sum_lanes(ad[c])
    return g_log_consts, g_means, g_prec, g_dof


def pointwise_log_likelihood_numba(X, weights, means, chols, dof=None) -> np.ndarray:
    """``log p(x_n | theta_s)`` for a stack of draws, shape (S, N).

    ``weights`` (S, K), ``means`` (S, K, D), ``chols`` (S, K, D, D) lower Cholesky factors,
    ``dof`` (S, K) for Student-t components. The kernel of
    :class:`bayesgmm.likelihood.ops.MixtureLogLik` (:func:`t_loglik` with ``dof``), one
    draw per call (no (S, N, K) arrays).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    d = X.shape[1]
    with np.errstate(divide="ignore"):
        log_weights = np.ascontiguousarray(np.log(weights), dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    # Lower triangular; only the lower triangle is read.
    prec = np.ascontiguousarray(np.linalg.inv(chols), dtype=np.float64)
    out = np.empty((log_weights.shape[0], X.shape[0]))
    if dof is not None:
        nu = np.ascontiguousarray(dof, dtype=np.float64)
        consts = log_weights + student_t_log_norm(nu, d)
    for i in range(out.shape[0]):
        if dof is None:
            out[i] = loglik(X, log_weights[i], means[i], prec[i])[0]
        else:
            out[i] = t_loglik(X, consts[i], means[i], prec[i], nu[i])[0]
    return out


# ------------------------------------------------------------------ prediction over draws
@numba.njit(cache=True, nogil=True, error_model="numpy")
def predictive_rows(X, first, stop, consts, means, prec, dof, noise_log_weights,
                    noise_log_density, proba, log_density, per_draw):
    """Posterior-mean responsibilities and log predictive density of rows ``first:stop``.

    For every draw ``s`` and row ``n`` the joint log densities are
    ``consts[s, k] - |P_sk (x_n - mu_sk)|^2 / 2`` (Gaussian components), or
    ``consts[s, k] - (nu + D) / 2 log(1 + |.|^2 / nu)`` with ``dof[s, k] = nu`` (Student-t;
    ``dof`` of shape (0, 0): Gaussian), and, with a noise component
    (``noise_log_weights`` (S,), else of shape (0,)), ``noise_log_weights[s] +
    noise_log_density[n]`` as a last column. ``consts`` holds ``log w + log|P|`` plus
    ``-D/2 log 2 pi`` or the t's normalising constant. The row's responsibilities under
    each draw are summed and ``proba[n]`` (K or K + 1) gets their mean;
    ``log_density[n]`` gets ``log (1/S) sum_s p(x_n | theta_s)``. ``per_draw`` (S, stop -
    first, K or K + 1), unless of shape (0, 0, 0), gets every draw's responsibilities of
    the rows, from ``first`` on.

    One draw at a time per block of :data:`BLOCK` rows (no (S, N, K) array), with the
    blocks' kernels of :func:`loglik_kernel`; it releases the GIL, so threads can run it on
    disjoint row ranges at once (see :mod:`bayesgmm.likelihood.predictive`). Rows are
    independent: the result for a row does not depend on the range it is computed in.
    """
    d = X.shape[1]
    n_draws, k = consts.shape
    student = dof.shape[0] > 0
    noise = noise_log_weights.shape[0] > 0
    kt = k + 1 if noise else k
    keep = per_draw.shape[0] > 0
    cols = np.arange(d)
    xb = np.empty((d, BLOCK))
    eb = np.empty((d, BLOCK))
    lp = np.empty((kt, BLOCK))
    acc = np.empty((kt, BLOCK))
    ll = np.empty((n_draws, BLOCK))
    q = np.empty(BLOCK)
    z = np.empty(BLOCK)
    top = np.empty(BLOCK)
    total = np.empty(BLOCK)
    tmp = np.empty(BLOCK)
    tmp2 = np.empty(BLOCK)
    lq = np.empty(BLOCK)
    bits = np.empty(BLOCK, np.int64)
    row = np.empty(BLOCK)
    for start in range(first, stop, BLOCK):
        nb = min(BLOCK, stop - start)
        _load_block(X, cols, start, nb, xb)
        acc[:, :nb] = 0.0
        for s in range(n_draws):
            for c in range(k):
                _residuals(xb, means[s, c], nb, eb)
                _block_quadratic(eb, prec[s], c, nb, q, z)
                cc = consts[s, c]
                if student:
                    nu = dof[s, c]
                    _log1p_ratio(q, nu, nb, tmp, lq, bits)
                    half = -0.5 * (nu + d)
                    for b in range(nb):
                        lp[c, b] = _fma(half, lq[b], cc)
                else:
                    for b in range(nb):
                        lp[c, b] = _fma(-0.5, q[b], cc)
            if noise:
                for b in range(nb):
                    lp[k, b] = noise_log_weights[s] + noise_log_density[start + b]
            # The row's log-likelihood into ll[s], its responsibilities in place into lp.
            _block_normalise(lp, nb, 0, row, lp, top, total, tmp, tmp2, bits)
            for b in range(nb):
                ll[s, b] = row[b]
            for c in range(kt):
                for b in range(nb):
                    acc[c, b] += lp[c, b]
            if keep:
                for b in range(nb):
                    for c in range(kt):
                        per_draw[s, start - first + b, c] = lp[c, b]
        inv = 1.0 / n_draws
        for b in range(nb):
            for c in range(kt):
                proba[start + b, c] = acc[c, b] * inv
        # log-mean-exp over the draws: the logsumexp of the draws' rows as over components
        # (the normalised values overwrite ll, which is not read again).
        _block_normalise(ll, nb, 0, row, ll, top, total, tmp, tmp2, bits)
        log_n = np.log(np.float64(n_draws))
        for b in range(nb):
            log_density[start + b] = row[b] - log_n
