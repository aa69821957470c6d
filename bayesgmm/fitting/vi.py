"""Variational inference: mean-field, full-rank and minibatch ADVI from the EM start."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm

from ..covariance import CholeskyStructure, structure
from ..seeds import draw_seed
from .compile import quiet_pymc
from .interrupt import interrupted, raise_if_interrupted, reraise_interrupts
from .nuts import draws_from_posterior

__all__ = ["run_vi", "elbo_converged"]


class _ElboPlateau:
    """Callback that stops VI once the ELBO stops rising (see :func:`elbo_converged`)."""

    def __init__(self, window: int = 500):
        self.window = window

    def __call__(self, approx, losses, i):
        # On StopIteration PyMC keeps the history without the last loss: decide on what it
        # keeps, or the final check on that history can disagree and warn for nothing.
        if i % self.window == 0 and elbo_converged(-np.asarray(losses[:-1]), self.window):
            raise StopIteration("ELBO converged")


class _Progress:
    """Callback that moves a :class:`bayesgmm.progress.Bar` every ``every`` iterations."""

    def __init__(self, bar, every: int = 100):
        self.bar, self.every, self.counted = bar, every, 0

    def __call__(self, approx, losses, i):
        if not self.counted and i < self.every:  # compiled: time the iterations from here
            self.bar.restart()
            self.counted = i
        if i and i % self.every == 0:
            recent = np.asarray(losses[-self.every:], dtype=float)
            self.bar.update(i - self.counted, note=f"ELBO {-recent.mean():.6g}")
            self.counted = i


def _vi_phase(inference, name, max_iter, callbacks, progressbar, **kwargs):
    """``inference.fit`` with bayesgmm's bar in place of PyMC's (and its messages).

    PyMC's bar warns in Jupyter without ipywidgets, and its log reads a converged run as
    "Interrupted at 1,499 [14%]"; the bar's last line says whether the ELBO converged.
    """
    from ..progress import Bar

    bar = Bar(max_iter, name, progressbar)
    try:
        with quiet_pymc(True):
            approx = inference.fit(max_iter, callbacks=[_Progress(bar), *callbacks],
                                   progressbar=False, **kwargs)
    except BaseException:
        bar.close(note="interrupted")
        raise
    n = len(approx.hist)
    if interrupted():  # PyMC returned its approximation so far on Ctrl-C
        bar.close(note="interrupted")
    elif n < max_iter:
        bar.close(note=f"converged: the ELBO stopped rising after {n} iterations", done=n)
    else:
        bar.close(note=f"not converged in max_iter={max_iter} iterations (the ELBO was "
                       f"still rising): raise max_iter", done=max_iter)
    return approx


class _IterateAverage:
    """Polyak-Ruppert averaging of the variational parameters.

    With a constant step, stochastic gradients (Monte Carlo ELBO estimates, and minibatches
    above all) leave the final iterate wandering around the optimum; the average of the
    recent iterates sits much closer to it. This keeps an exponential moving average over
    about ``tau`` iterations (a plain running mean for the first ``tau``), and
    :meth:`apply` writes it into the approximation at the end.
    """

    def __init__(self, tau: int = 250):
        self.tau = tau
        self.n = 0
        self.avg: dict[str, np.ndarray] = {}

    def __call__(self, approx, losses, i):
        self.n += 1
        rate = 1.0 / min(self.n, self.tau)
        for name, shared in approx.shared_params.items():
            value = shared.get_value()
            if name not in self.avg:
                self.avg[name] = np.array(value, dtype=float)
            else:
                self.avg[name] += rate * (value - self.avg[name])

    def apply(self, approx) -> None:
        for name, shared in approx.shared_params.items():
            if name in self.avg:
                shared.set_value(self.avg[name].astype(shared.dtype))


def _start_sigma(model, scale: float) -> dict:
    """``start_sigma`` for PyMC's ADVI: ``scale`` for every unconstrained coordinate.

    PyMC matches the keys to the value variables' names ("weights_simplex__",
    "chol_cov_0_cholesky-cov-packed__"); under the random variables' names every transformed
    variable silently kept PyMC's default of 0.69, and at N=1e6, D=10, K=10 that blur made
    the mean field collapse onto one broad component (mean error 7.7).
    """
    ip = model.initial_point()
    return {vv.name: np.full(np.size(ip[vv.name]), scale) for vv in model.value_vars}


def _vi_start_scale(n_obs: int, k: int) -> float:
    """Start standard deviation of the mean field: 0.05, or ``1 / sqrt(N / K)`` if smaller.

    ``1 / sqrt(N / K)`` is the order of the posterior sd of a component mean on the
    standardised scale: at N=1e6 the approximation's sd of the means then came out 1.1x the
    analytic posterior sd, against 3.4x from 0.05.
    """
    return float(min(0.05, 1.0 / np.sqrt(max(n_obs, 1) / k)))


def _start_sds(model, start, n_obs: int) -> dict:
    """``start_sigma`` for PyMC's ADVI from the EM start: each coordinate's own scale.

    The mean field's optimum for a Gaussian posterior has standard deviations
    ``1 / sqrt(H_ii)``, ``H`` the posterior precision. For the component means and the
    packed Cholesky factors (log diagonal, raw off-diagonal entries) ``H_ii`` is about
    ``n_k`` times the per-point Fisher information at the start, ``n_k = N w_k``: for a
    mean or an off-diagonal entry in row ``i``, ``n_k (Sigma_k^-1)_ii``; for ``log L_ii``,
    ``n_k (1 + L_ii^2 (Sigma_k^-1)_ii)``. Every coordinate starts at that, capped at
    :func:`_vi_start_scale` (which also keeps empty components finite); the other
    coordinates (weights, ordered means, scale structures' ``sigma``) start at the cap.

    With one flat 0.05 for every coordinate, nearly collinear features (breast cancer, 30
    features, K=2: smallest covariance eigenvalue 1e-4) started the Cholesky entries 10-170
    times wider than the mean field's optimum (medians 0.006 and 0.016, smallest 0.0003).
    The expected log-likelihood under that blur was about -30,000, and the optimiser's
    cheapest way up emptied a component (weights 0.998 / 0.002, ELBO about -6,950, where a
    mean field around the MAP has about -3,850).
    """
    k, d = start.means.shape
    cap = _vi_start_scale(n_obs, k)
    sds = _start_sigma(model, cap)
    value_name = {rv.name: model.rvs_to_values[rv].name for rv in model.free_RVs}
    counts = n_obs * np.asarray(start.weights, dtype=float)  # em_start keeps w >= 1e-3
    prec_diag = np.diagonal(np.linalg.inv(start.covariances), axis1=1, axis2=2)  # (K, D)
    if "mu" in value_name:  # not with order_by (mu_order, mu_rest)
        sds[value_name["mu"]] = np.minimum(cap, (counts[:, None] * prec_diag) ** -0.5).ravel()
    covariances = structure(start.covariance_type)
    if isinstance(covariances, CholeskyStructure):
        factors = covariances.distinct(start.chols)
        names = covariances.variable_names(k)
        if len(names) == factors.shape[0] == k:
            groups = zip(names, factors, counts, prec_diag, strict=True)
        else:  # one factor shared by every component ("tied"): all N points inform it
            shared = factors[0] @ factors[0].T
            groups = [(names[0], factors[0], float(n_obs),
                       np.diag(np.linalg.inv(shared)))]
        rows, cols = np.tril_indices(d)
        diag = rows == cols
        for name, factor, n_k, p_ii in groups:
            info = p_ii[rows].copy()
            info[diag] = 1.0 + np.diag(factor)[rows[diag]] ** 2 * p_ii[rows[diag]]
            sds[value_name[name]] = np.minimum(cap, (n_k * info) ** -0.5)
    return sds


def _raveled(approx, values: dict) -> np.ndarray:
    """Per-variable arrays (keyed by value variable) in the order of ``approx``'s raveled mean."""
    (group,) = approx.groups
    out = np.empty(group.ddim)
    for name, slc, _, _ in group.ordering.values():
        out[slc] = np.ravel(values[name])
    return out


def _scaled_adam(learning_rate: float, mean_steps: np.ndarray):
    """Adam whose steps on the approximation's means are scaled per coordinate.

    Adam moves every coordinate by up to about ``learning_rate`` per iteration whatever its
    scale; on coordinates whose posterior sd is a thousandth of that, the iterates jitter by
    tens of sds. ``mean_steps`` (one factor per coordinate, in the order of the raveled
    means) multiplies the steps on the means (the parameter ``mu``); the standard
    deviations (``rho``, about log sd) keep the plain step. Breast cancer, K=2, 5,000
    iterations: ELBO of the averaged iterates -3,792 against -4,168 with the plain steps.
    """
    factors = np.asarray(mean_steps, dtype=float)

    def optimizer(loss_or_grads, params):
        updates = pm.adam(loss_or_grads, params, learning_rate=learning_rate)
        (mean,) = [param for param in params if param.name == "mu"]
        updates[mean] = mean + factors * (updates[mean] - mean)
        return updates

    return optimizer


@reraise_interrupts
def run_vi(model, start, *, method, draws, max_iter, rng, compile_kwargs, progressbar,
            n_obs, callbacks=()):
    """Mean-field ADVI from the EM start; full-rank ADVI then starts from the mean field.

    The standard deviations start at 0.05 (see :func:`_vi_start_scale`), with Adam at 0.02:
    PyMC's default start (unit standard deviations, Adagrad at 1e-3) needs about ten times
    the iterations. The result is the average of the recent iterates
    (:class:`_IterateAverage`), much closer to the optimum than the last iterate with
    minibatches (docs/fitting.md, "Why these defaults").

    ``callbacks``: PyMC callbacks ``(approx, losses, i)`` run first after every iteration
    of each phase (a streamed model's next minibatch, see :mod:`bayesgmm.fitting.streamed`).
    """
    k, d = start.means.shape
    start_point = start.point()
    window = 500
    with model, quiet_pymc(not progressbar):
        # The JAX backend copies PyMC's random generator into the compiled graph and says so;
        # the seed still fixes the result.
        warnings.filterwarnings("ignore", message=".*RandomType SharedVariables.*")
        # PyMC builds the approximation from the model's initial point, whose default fails
        # for D=1 (LKJCholeskyCov with n=1): give every variable the EM start instead.
        for name, value in start_point.items():
            model.set_initval(model[name], value)
        sds = _start_sds(model, start, n_obs)
        inference = pm.ADVI(start=start_point, start_sigma=sds, random_seed=draw_seed(rng))
        # Steps on each mean in proportion to its start sd: 0.02 where the sd is the cap.
        steps = _raveled(inference.approx, sds) / _vi_start_scale(n_obs, k)
        averager = _IterateAverage()
        approx = _vi_phase(inference, "ADVI (mean field)", max_iter,
                           [*callbacks, averager, _ElboPlateau(window)], progressbar,
                           obj_optimizer=_scaled_adam(0.02, steps),
                           compile_kwargs=compile_kwargs)
        raise_if_interrupted()  # PyMC returns its approximation so far on Ctrl-C
        averager.apply(approx)
        hist = np.asarray(approx.hist, dtype=float)
        diverged = None
        if method == "fullrank_advi":
            mean_field = approx
            mf_mean = approx.mean.get_value()
            mf_std = approx.std.eval()
            inference = pm.FullRankADVI(start=start_point, random_seed=draw_seed(rng))
            params = inference.approx.shared_params
            params["mu"].set_value(mf_mean)
            n = mf_std.size
            rows, cols = np.tril_indices(n)
            # The diagonal of L is stored as rho, with sigma = softplus(rho).
            rho = np.log(np.expm1(mf_std))
            params["L_tril"].set_value(np.where(rows == cols, rho[rows], 0.0))
            averager = _IterateAverage()
            approx = _vi_phase(inference, "ADVI (full rank)", max_iter,
                               [*callbacks, averager, _ElboPlateau(window)], progressbar,
                               obj_optimizer=pm.adam(learning_rate=0.002),
                               compile_kwargs=compile_kwargs)
            raise_if_interrupted()
            averager.apply(approx)
            full_rank = np.asarray(approx.hist, dtype=float)
            if _diverged(-hist, -full_rank):
                # Keep the approximation the full-rank phase started from; its history is
                # the one that belongs to it. The diagnostics say so.
                approx, diverged = mean_field, float(np.mean(-full_rank[-100:]))
            else:
                # One history for the whole fit: the mean-field phase, then the full-rank one.
                hist = np.concatenate([hist, full_rank])
        idata = approx.sample(draws, random_seed=draw_seed(rng))
    draws_ = draws_from_posterior(idata["posterior"].to_dataset(), k, d, start.covariance_type)
    out = {"draws": draws_, "elbo": -hist}
    if diverged is not None:
        out["fullrank_diverged_elbo"] = diverged
    return out


def _diverged(mean_field_elbo: np.ndarray, full_rank_elbo: np.ndarray) -> bool:
    """Whether the full-rank phase ended worse than the mean field it started from.

    A full-rank Gaussian contains the mean field, so its ELBO should end at least as high,
    up to noise: more than max(10, 3 sd of the mean field's last ELBO values) lower, or not
    finite, means it diverged (on breast cancer's 30 features it reached -1e73, and its
    draws had singular covariances).
    """
    mf, fr = mean_field_elbo[-500:], full_rank_elbo[-100:]
    if not fr.size or not np.isfinite(fr).all():
        return True
    return bool(fr.mean() < mf.mean() - max(10.0, 3.0 * float(mf.std())))


def elbo_converged(elbo: np.ndarray, window: int = 500) -> bool:
    """Whether the ELBO has stopped rising.

    The mean over the last ``window`` iterations differs from the mean over the window before
    by less than three Monte Carlo standard errors, or by less than 1e-4 relative.
    """
    elbo = np.asarray(elbo, dtype=float)
    if elbo.size < 2 * window or not np.isfinite(elbo[-2 * window:]).all():
        return False
    last, prev = elbo[-window:], elbo[-2 * window:-window]
    noise = 3.0 * np.sqrt(last.var() / window + prev.var() / window)
    return bool(abs(last.mean() - prev.mean()) <= max(noise, 1e-4 * abs(last.mean())))
