"""The layout of a fit's ``xarray.DataTree``, written once: how it is built and read.

Every method returns the same groups:

``posterior``
    ``weights`` (chain, draw, component), ``means`` (..., component, feature), ``sigmas``
    (..., component, feature) and ``covariances`` (..., component, feature, feature_bis),
    on the user's scale, relabelled so every draw has the same component order. VI: draws
    from the approximation (one chain); MAP: the optimum as one draw. Student-t components
    (``component="student_t"``) add ``dof`` (chain, draw, component), their degrees of
    freedom; their ``covariances`` are then the scale matrices (and ``sigmas`` their
    diagonals' roots), the covariance being ``dof / (dof - 2)`` times it where ``dof > 2``.
``log_likelihood``
    ``x`` (chain, draw, obs), log p(x_n | theta) per observation, for LOO (stored when it
    takes at most :data:`LOG_LIKELIHOOD_MAX_BYTES`).
``observed_data``
    ``x`` (obs, feature).
``constant_data``
    ``center`` and ``scale`` (feature) of the internal standardisation.
``sample_stats``
    the sampler's statistics (NUTS only).
``relabeling``
    ``permutation`` (chain, draw, component): which sampled component became each
    reported one.
``variational``
    ``elbo`` (iteration), the ELBO history, and the attribute ``converged`` (VI only);
    ``fullrank_diverged_elbo`` when full-rank ADVI diverged and the result is the mean-field
    approximation it started from (the attribute is the full-rank phase's final ELBO).
``optimizer``
    attributes only: ``converged``, ``message``, ``log_posterior``, ``iterations`` (MAP only).
``initial_point``
    the point the fit started from (``weights``, ``means``, ``covariances``, and ``dof`` for
    Student-t components with free degrees of freedom): the best mode
    of the mode search (NUTS, VI), or the EM optimum the MAP was polished from, or the best
    EM solution where there was no search.
``mode_search``
    one entry per distinct optimum of the search before sampling, best first (dim ``mode``):
    ``log_posterior`` (at the optimum, no Jacobian), ``em_rank`` (rank of the EM optimum it
    was polished from), ``converged``, ``weights`` (mode, component; largest first). Absent
    where there was no search (sparse priors, minibatches, more rows than
    :data:`~bayesgmm.fitting.modes.MODE_SEARCH_MAX_ROWS`).
``modes``
    NUTS with two or more chains: one entry per chain and round (dim ``record``): ``chain``,
    ``round`` (0 is the first run, 1.. the repairs), ``mean_log_density`` (the sampler's log
    density, averaged over the chain's draws), ``weights`` (record, component; largest
    first) and ``restarted`` (the chain was sampled again after this round).

Each group's attributes include the ``*_ATTR`` constants below (method, sampler, priors,
covariance structure, ordering, whether the data had feature names). :func:`assemble`
builds the tree; everything that reads a fit uses the accessors here (:func:`as_tree`,
:func:`fit_info`, :func:`posterior_draws`, :func:`checked_data`, ...), so that the layout is
known in one module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import pymc as pm
import xarray as xr

from ..exceptions import FitWarning
from ..likelihood import KERNEL_MIN_TERMS, pointwise_log_likelihood
from ..likelihood.kernels import pointwise_log_likelihood_numba
from ..likelihood.noise import NoiseRegion, NoiseTerm
from ..likelihood.reference import pointwise_log_likelihood_numpy, weighted_log_densities
from ..permutations import apply_permutations, gaussian_kl_cost, pivot_permutations
from ..validation import check_features, default_feature_names
from .vi import elbo_converged

__all__ = ["LOG_LIKELIHOOD_MAX_BYTES", "LOG_LIKELIHOOD_NOT_STORED", "assemble", "as_tree",
           "FitInfo", "fit_info", "feature_names_in", "checked_data", "Draws",
           "known_labels", "known_classes", "with_known_labels", "labelled_terms",
           "posterior_draws", "noise_region_of", "thinned_draws", "sample_coords", "point_blocks",
           "log_likelihood_blocks", "total_log_likelihood", "METHOD_ATTR", "SAMPLER_ATTR",
           "COVARIANCE_TYPE_ATTR", "WEIGHT_CONCENTRATION_ATTR", "ORDER_BY_ATTR",
           "PRIORS_ATTR", "FEATURE_NAMES_ATTR", "FIT_SECONDS_ATTR", "start_weights",
           "DATA_ROWS_ATTR", "DATA_SOURCE_ATTR", "mark_subsample", "data_rows"]

# Attributes of every group of a fit.
METHOD_ATTR = "bayesgmm_method"  # "nuts", "advi", "fullrank_advi" or "map"
SAMPLER_ATTR = "bayesgmm_sampler"  # the NUTS sampler that ran; "" for the other methods
PRIORS_ATTR = "bayesgmm_priors"  # repr of the Priors
WEIGHT_CONCENTRATION_ATTR = "bayesgmm_weight_concentration"
COVARIANCE_TYPE_ATTR = "bayesgmm_covariance_type"
ORDER_BY_ATTR = "bayesgmm_order_by"  # the ordered feature's name; "" without the constraint
# 1 if the data it was fitted to had feature names (a data frame with string column names),
# 0 if not; scikit-learn's feature_names_in_ rule.
FEATURE_NAMES_ATTR = "bayesgmm_feature_names_in"
# A noise component's region ("box", "hypvol", "hull"; "" without one), its log volume and
# the log side lengths of the data's bounding box, in the user's units
# (:class:`~bayesgmm.likelihood.noise.NoiseRegion`).
NOISE_ATTR = "bayesgmm_noise"
# Wall-clock seconds of the whole fit (validation, EM start, mode search, inference),
# on the posterior group only; absent from fits saved before it existed.
FIT_SECONDS_ATTR = "bayesgmm_fit_seconds"
# A fit of data read in slices (bayesgmm.sources): its observed_data group holds a uniform
# random subsample; these attributes (on that group) give the data's rows and what they were.
DATA_ROWS_ATTR = "bayesgmm_data_rows"
DATA_SOURCE_ATTR = "bayesgmm_data_source"
NOISE_LOG_VOLUME_ATTR = "bayesgmm_noise_log_volume"
NOISE_LOG_WIDTHS_ATTR = "bayesgmm_noise_log_widths"


# Largest pointwise log-likelihood (chains x draws x N doubles) stored by default.
LOG_LIKELIHOOD_MAX_BYTES = 200e6
# How the warning that the group was not stored begins (selection recognises it by this).
LOG_LIKELIHOOD_NOT_STORED = "Pointwise log-likelihood not stored"


def mark_subsample(result: xr.DataTree, n_rows: int, source: str) -> None:
    """Record that ``result``'s observed data are a subsample of ``n_rows`` rows of ``source``."""
    result["observed_data"].attrs[DATA_ROWS_ATTR] = int(n_rows)
    result["observed_data"].attrs[DATA_SOURCE_ATTR] = str(source)


def data_rows(fitted) -> int:
    """The rows the fit saw: its data's, or the out-of-core data's (see :func:`mark_subsample`)."""
    obs = as_tree(fitted)["observed_data"]
    return int(obs.attrs.get(DATA_ROWS_ATTR, obs.sizes["obs"]))


def assemble(X, names, std, start, out, *, method, sampler, priors,
             store_log_likelihood, named_features=False, sample_weight=None,
             labels=None, classes=None, noise=None) -> xr.DataTree:
    """The result's DataTree from a fitter's draws (standardised scale) and its start.

    Every draw is relabelled to the EM start (pivot relabelling), unless the ordering
    constraint or known ``labels`` (codes, -1 where unknown, naming ``classes``) fix the
    labels, then mapped back to the user's scale with ``std``. ``noise``: the region of a
    noise component (user's units); the draws then hold ``noise_weight`` and the weights
    are the components' shares of the rest, which become their weights here.
    """
    w, mu, chols = out["draws"]["weights"], out["draws"]["means"], out["draws"]["chols"]
    stats, elbo = out.get("sample_stats"), out.get("elbo")
    n_chains, n_draws, k = w.shape
    d = mu.shape[-1]
    flat = n_chains * n_draws
    if start.order_by is None and labels is None:
        # Relabel every draw to the EM start, on the standardised scale.
        covs_std = chols @ np.swapaxes(chols, -1, -2)
        cost = gaussian_kl_cost(mu.reshape(flat, k, d), covs_std.reshape(flat, k, d, d),
                                start.means, start.covariances)
        perm = pivot_permutations(cost)
    else:  # the ordering constraint or the known labels fix them
        perm = np.tile(np.arange(k), (flat, 1))
    w = apply_permutations(w.reshape(flat, k), perm)
    mu = apply_permutations(mu.reshape(flat, k, d), perm)
    chols = apply_permutations(chols.reshape(flat, k, d, d), perm)
    dof = out["draws"].get("dof")  # Student-t components: unchanged by the scaling
    if dof is not None:
        dof = apply_permutations(np.asarray(dof, dtype=float).reshape(flat, k), perm)
    noise_term = None
    if noise is not None:  # the components' shares of 1 - noise_weight become weights
        w0 = np.asarray(out["draws"]["noise_weight"], dtype=float).reshape(flat)
        w = (1 - w0)[:, None] * w
        noise_term = NoiseTerm(w0, noise)
    # Back to the user's scale.
    means = std.means_to_user(mu)
    chols_user = std.chols_to_user(chols)
    covs = chols_user @ np.swapaxes(chols_user, -1, -2)
    sigmas = np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1))

    shape = (n_chains, n_draws)
    cd = ("chain", "draw")
    coords = {"chain": np.arange(n_chains), "draw": np.arange(n_draws),
              "component": np.arange(k), "feature": names, "feature_bis": names}
    attrs = {
        "created_at": datetime.now(UTC).isoformat(),
        "inference_library": "pymc",
        "inference_library_version": pm.__version__,
        METHOD_ATTR: method,
        SAMPLER_ATTR: sampler if method == "nuts" else "",
        PRIORS_ATTR: repr(priors),
        WEIGHT_CONCENTRATION_ATTR: priors.weight_concentration,
        COVARIANCE_TYPE_ATTR: start.covariance_type,
        ORDER_BY_ATTR: "" if start.order_by is None else str(names[start.order_by]),
        FEATURE_NAMES_ATTR: int(named_features),
        NOISE_ATTR: "" if noise is None else noise.kind,
    }
    if noise is not None:
        attrs[NOISE_LOG_VOLUME_ATTR] = noise.log_volume
        attrs[NOISE_LOG_WIDTHS_ATTR] = noise.log_widths.copy()
    posterior = xr.Dataset(
        {
            "weights": (cd + ("component",), w.reshape(shape + (k,))),
            "means": (cd + ("component", "feature"), means.reshape(shape + (k, d))),
            "sigmas": (cd + ("component", "feature"), sigmas.reshape(shape + (k, d))),
            "covariances": (cd + ("component", "feature", "feature_bis"),
                            covs.reshape(shape + (k, d, d))),
        },
        coords=coords,
        attrs=attrs,
    )
    if dof is not None:
        posterior["dof"] = (cd + ("component",), dof.reshape(shape + (k,)))
    if noise is not None:
        posterior["noise_weight"] = (cd, noise_term.weights.reshape(shape))
    n = X.shape[0]
    tree: dict[str, xr.Dataset] = {"posterior": posterior}
    if store_log_likelihood is None:
        store_log_likelihood = flat * n * 8 <= LOG_LIKELIHOOD_MAX_BYTES
        if not store_log_likelihood:
            warnings.warn(
                f"{LOG_LIKELIHOOD_NOT_STORED}: {n_chains} chain(s) x {n_draws} draws x "
                f"{n} points take {flat * n * 8 / 1e6:.0f} MB (more than "
                f"{LOG_LIKELIHOOD_MAX_BYTES / 1e6:.0f} MB). bayesgmm.selection.loo(fit) and "
                f"select_components compute LOO from the draws in chunks, and "
                f"bayesgmm.assignments.log_likelihood(fit) returns the array; for arviz_stats."
                f"loo(fit) itself, fit with store_log_likelihood=True.", FitWarning,
                stacklevel=3)
    if store_log_likelihood:
        ll = pointwise_log_likelihood(X, w, means, chols_user, dof, noise_term)
        ll = labelled_terms(ll, X, labels, w, means, chols_user, dof).reshape(shape + (n,))
        tree["log_likelihood"] = xr.Dataset(
            {"x": (cd + ("obs",), ll)}, coords={**coords, "obs": np.arange(n)}, attrs=attrs)
    tree["observed_data"] = xr.Dataset(
        {"x": (("obs", "feature"), X)}, coords={"obs": np.arange(n), "feature": names},
        attrs=attrs)
    constants = {"center": ("feature", std.center), "scale": ("feature", std.scale)}
    if sample_weight is not None:
        constants["sample_weight"] = ("obs", np.asarray(sample_weight, dtype=float))
    extra_coords = {}
    if labels is not None:
        constants["labels"] = ("obs", np.asarray(labels, dtype=np.int64))
        extra_coords["class"] = np.asarray(classes)
    if sample_weight is not None or labels is not None:
        extra_coords["obs"] = np.arange(n)
    tree["constant_data"] = xr.Dataset(
        constants, coords={"feature": names, **extra_coords}, attrs=attrs)
    if stats is not None:
        tree["sample_stats"] = stats.assign_attrs(attrs)
    tree["relabeling"] = xr.Dataset(
        {"permutation": (cd + ("component",), perm.reshape(shape + (k,)))},
        coords={k_: coords[k_] for k_ in ("chain", "draw", "component")}, attrs=attrs)
    if elbo is not None:
        tree["variational"] = xr.Dataset(
            {"elbo": ("iteration", elbo)}, coords={"iteration": np.arange(elbo.size)},
            attrs={**attrs, "converged": int(elbo_converged(elbo)),
                   **({"fullrank_diverged_elbo": out["fullrank_diverged_elbo"]}
                      if "fullrank_diverged_elbo" in out else {})})
    if "optimizer" in out:
        tree["optimizer"] = xr.Dataset(attrs={**attrs, **out["optimizer"]})
    if out.get("mode_search"):
        found = out["mode_search"]
        tree["mode_search"] = xr.Dataset(
            {"log_posterior": ("mode", [m.log_posterior for m in found]),
             "em_rank": ("mode", [m.em_rank for m in found]),
             "converged": ("mode", [int(m.converged) for m in found]),
             "weights": (("mode", "component"),
                         np.stack([np.sort(m.start.weights)[::-1] for m in found]))},
            coords={"mode": np.arange(len(found)), "component": np.arange(k)}, attrs=attrs)
    if out.get("modes"):
        records = out["modes"]
        tree["modes"] = xr.Dataset(
            {"chain": ("record", [r["chain"] for r in records]),
             "round": ("record", [r["round"] for r in records]),
             "mean_log_density": ("record", [r["mean_log_density"] for r in records]),
             "weights": (("record", "component"), np.stack([r["weights"] for r in records])),
             "restarted": ("record", [int(r["restarted"]) for r in records])},
            coords={"record": np.arange(len(records)), "component": np.arange(k)},
            attrs=attrs)
    start_covs = start.covariances * np.outer(std.scale, std.scale)
    tree["initial_point"] = xr.Dataset(
        {
            "weights": ("component", start.weights),
            "means": (("component", "feature"), std.means_to_user(start.means)),
            "covariances": (("component", "feature", "feature_bis"), start_covs),
            **({} if start.dof is None else {"dof": ("component", start.dof)}),
            **({} if start.noise_weight is None else
               {"noise_weight": ((), float(start.noise_weight))}),
        },
        coords={key: coords[key] for key in ("component", "feature", "feature_bis")},
        attrs=attrs,
    )
    return xr.DataTree.from_dict(tree)


# ----------------------------------------------------------------------------- reading a fit
def as_tree(fitted) -> xr.DataTree:
    """The DataTree of a fit: ``fitted`` itself, or a fitted BayesianGMM's ``idata_``.

    Every function that reads a fit takes either, and calls this first.
    """
    if isinstance(fitted, xr.DataTree):
        return fitted
    idata = getattr(fitted, "idata_", None)
    if idata is None:
        raise TypeError("Pass a fitted BayesianGMM or the xarray.DataTree that bayesgmm.fit "
                        f"returns, got {type(fitted).__name__} (is the model fitted?).")
    return idata


@dataclass(frozen=True)
class FitInfo:
    """How a fit was made, read from its posterior's attributes.

    Files saved by older versions may lack an attribute; the defaults here are what those
    versions did.
    """

    method: str
    sampler: str
    covariance_type: str
    weight_concentration: float
    order_by: str

    @property
    def sparse(self) -> bool:
        """A sparse Dirichlet prior (an overfitted mixture): empty components are intended."""
        return self.weight_concentration < 1.0


def fit_info(fitted) -> FitInfo:
    """:class:`FitInfo` of a fit (a BayesianGMM or its DataTree)."""
    attrs = as_tree(fitted)["posterior"].attrs
    return FitInfo(
        method=str(attrs.get(METHOD_ATTR, "nuts")),
        sampler=str(attrs.get(SAMPLER_ATTR, "")),
        covariance_type=str(attrs.get(COVARIANCE_TYPE_ATTR, "full")),
        weight_concentration=float(attrs.get(WEIGHT_CONCENTRATION_ATTR, 1.0)),
        order_by=str(attrs.get(ORDER_BY_ATTR, "")),
    )


def start_weights(fitted) -> np.ndarray | None:
    """The weights (K,) of the EM solution the fit started from, in the posterior's order.

    The posterior is relabelled to this start (or both are ordered along the same feature),
    so component k of each is the same cluster. None for a fit saved without the group.
    """
    tree = as_tree(fitted)
    if "initial_point" not in tree.children:
        return None
    return tree["initial_point"]["weights"].to_numpy()


def feature_names_in(fitted) -> list[str] | None:
    """The feature names a fit saw, or None if it saw none (an array).

    Fits saved before :data:`FEATURE_NAMES_ATTR` existed count as named unless their names
    are the defaults ``x0``, ``x1``, ...
    """
    post = as_tree(fitted)["posterior"]
    names = [str(f) for f in post["feature"].to_numpy()]
    flag = post.attrs.get(FEATURE_NAMES_ATTR)
    if flag is None:
        return None if names == default_feature_names(len(names)) else names
    return names if int(flag) else None


def checked_data(fitted, X=None, *, name: str = "X") -> np.ndarray:
    """The points to evaluate a fit at.

    Its fitted data when ``X`` is None, else ``X`` checked against the fit's features (by
    name where the fit saw names).
    """
    tree = as_tree(fitted)
    if X is None:
        return tree["observed_data"]["x"].to_numpy()
    return check_features(X, feature_names_in(tree), tree["posterior"].sizes["feature"],
                          name=name)


def labelled_terms(ll: np.ndarray, X: np.ndarray, labels: np.ndarray | None, weights,
                   means, chols, dof=None) -> np.ndarray:
    """Pointwise log-likelihood (S, N) with each labelled row's term its own component's.

    Under known labels (``labels >= 0``; see :func:`bayesgmm.fit`'s ``y``) row n's term is
    ``log w_j + log N(x_n | theta_j)``; ``ll`` holds the mixture's terms of all rows and is
    changed in place. Draws (S) flattened: ``weights`` (S, K), ``means`` (S, K, D),
    ``chols`` (S, K, D, D), and ``dof`` (S, K) for Student-t components.
    """
    if labels is None:
        return ll
    rows = np.flatnonzero(labels >= 0)
    s, k, d = means.shape
    for sl in point_blocks(rows.size, s * k * d):
        own = labels[rows[sl]]
        joint = weighted_log_densities(X[rows[sl]], weights, means, chols, dof)  # (S, n, K)
        ll[:, rows[sl]] = np.take_along_axis(
            joint, np.broadcast_to(own[None, :, None], (s, own.size, 1)), axis=-1)[..., 0]
    return ll


def known_labels(fitted) -> np.ndarray | None:
    """Codes (N,) of the fitted rows' known components (-1 where unknown), or None.

    None for a fit without known labels (see :func:`bayesgmm.fit`'s ``y``).
    """
    tree = as_tree(fitted)
    if "constant_data" in tree.children and "labels" in tree["constant_data"]:
        return tree["constant_data"]["labels"].to_numpy()
    return None


def known_classes(fitted) -> np.ndarray | None:
    """The labels that name components 0, 1, ... of a fit with known labels, or None."""
    tree = as_tree(fitted)
    if "constant_data" in tree.children and "class" in tree["constant_data"].coords:
        return tree["constant_data"]["class"].to_numpy()
    return None


def with_known_labels(r: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
    """Responsibilities (..., n, K) with each labelled row given to its own component.

    Under the model, a known row's (``codes >= 0``) assignment is certain. In place.
    """
    if codes is not None:
        rows = np.flatnonzero(codes >= 0)
        if rows.size:
            r[..., rows, :] = 0.0
            r[..., rows, codes[rows]] = 1.0
    return r


class Draws(NamedTuple):
    """Posterior draws flattened over (chain, draw): S = chains x draws."""

    weights: np.ndarray  # (S, K)
    means: np.ndarray  # (S, K, D)
    chols: np.ndarray  # (S, K, D, D), lower Cholesky factors of the covariances
    # (S, K): Student-t components' degrees of freedom; None for Gaussian components. Last,
    # so that ``*draws`` passes it on as the ``dof`` of the likelihood functions.
    dof: np.ndarray | None = None
    # A noise component's weights (S,) and region; the components' weights then sum to 1
    # minus its weight. Passed on by ``*draws`` as the likelihood functions' ``noise``.
    noise: NoiseTerm | None = None

    def sliced(self, index) -> Draws:
        """The draws at ``index`` (a slice or indices along S)."""
        return Draws(self.weights[index], self.means[index], self.chols[index],
                     None if self.dof is None else self.dof[index],
                     None if self.noise is None else self.noise.sliced(index))


def posterior_draws(fitted, draws: np.ndarray | None = None) -> Draws:
    """Weights, means, Cholesky factors (and t components' dof) of every draw, flattened.

    ``fitted``: a BayesianGMM, its DataTree, or a posterior node or Dataset. ``draws``:
    indices along ``draw`` to keep (see :func:`thinned_draws`), in every chain.
    """
    post = fitted if isinstance(fitted, (xr.Dataset, xr.DataTree)) and "weights" in fitted \
        else as_tree(fitted)["posterior"]
    if draws is not None:
        post = post.isel(draw=draws)
    k, d = post.sizes["component"], post.sizes["feature"]
    w = post["weights"].to_numpy().reshape(-1, k)
    means = post["means"].to_numpy().reshape(-1, k, d)
    covs = post["covariances"].to_numpy().reshape(-1, k, d, d)
    dof = post["dof"].to_numpy().reshape(-1, k) if "dof" in post else None
    noise = None
    if "noise_weight" in post:
        noise = NoiseTerm(post["noise_weight"].to_numpy().reshape(-1), noise_region_of(post))
    return Draws(w, means, np.linalg.cholesky(covs), dof, noise)


def noise_region_of(fitted) -> NoiseRegion | None:
    """The noise component's region of a fit (None without one)."""
    post = fitted if isinstance(fitted, (xr.Dataset, xr.DataTree)) and "weights" in fitted \
        else as_tree(fitted)["posterior"]
    kind = post.attrs.get(NOISE_ATTR, "")
    if not kind:
        return None
    return NoiseRegion(str(kind), float(post.attrs[NOISE_LOG_VOLUME_ATTR]),
                       np.asarray(post.attrs[NOISE_LOG_WIDTHS_ATTR], dtype=float))


def thinned_draws(n_draws: int, n_chains: int, max_draws: int) -> np.ndarray:
    """Draw indices, evenly spread, so that all chains together keep about ``max_draws``."""
    per_chain = max(1, int(max_draws) // n_chains)
    return np.unique(np.linspace(0, n_draws - 1, min(per_chain, n_draws)).round().astype(int))


def sample_coords(post, draws: np.ndarray | None = None) -> dict:
    """``chain`` and ``draw`` coordinates of a posterior, of the kept ``draws`` if given."""
    draw = post["draw"].to_numpy()
    return {"chain": post["chain"].to_numpy(),
            "draw": draw if draws is None else draw[draws]}


# Per-draw values held at once when working through the points in blocks: 32 MB of doubles.
BLOCK_ELEMENTS = 4_000_000


def point_blocks(n_points: int, per_point: int) -> list[slice]:
    """Consecutive blocks of points, each holding about :data:`BLOCK_ELEMENTS` values."""
    step = max(1, BLOCK_ELEMENTS // max(1, per_point))
    return [slice(start, min(n_points, start + step)) for start in range(0, n_points, step)]


def log_likelihood_blocks(fitted, X: np.ndarray, draws: np.ndarray | None = None,
                          labels: np.ndarray | None = None):
    """Log p(x_n | theta) for blocks of points: yields (slice, array (chain, draw, block)).

    Uses the same implementation as the fit's stored group (chosen by the total size, see
    :func:`bayesgmm.likelihood.pointwise_log_likelihood`), so the numbers agree with it.
    ``labels``: known components of the rows of ``X`` (the fitted data's,
    :func:`known_labels`), whose terms are then their own component's, as stored.
    """
    post = as_tree(fitted)["posterior"]
    if draws is not None:
        post = post.isel(draw=draws)
    c, s = post.sizes["chain"], post.sizes["draw"]
    w, means, chols, dof, noise = posterior_draws(post)
    k = w.shape[1]
    if w.shape[0] * X.shape[0] * k < KERNEL_MIN_TERMS:
        kernel = pointwise_log_likelihood_numpy
    else:
        kernel = pointwise_log_likelihood_numba
    for sl in point_blocks(X.shape[0], c * s):
        block = kernel(X[sl], w, means, chols, dof)
        if noise is not None:
            block = np.logaddexp(block, noise.log_joint(X[sl]))
        if labels is not None:
            block = labelled_terms(block, X[sl], labels[sl], w, means, chols, dof)
        yield sl, block.reshape(c, s, -1)


def total_log_likelihood(fitted) -> xr.DataArray | None:
    """Sum over points of log p(x_n | theta) per draw, (chain, draw); None without data.

    From the stored group when there is one, else computed block by block of points.
    """
    tree = as_tree(fitted)
    if "log_likelihood" in tree.children:
        return tree["log_likelihood"]["x"].sum("obs")
    if "observed_data" not in tree.children:
        return None
    post = tree["posterior"]
    X = tree["observed_data"]["x"].to_numpy()
    total = np.zeros((post.sizes["chain"], post.sizes["draw"]))
    for _, block in log_likelihood_blocks(tree, X, labels=known_labels(tree)):
        total += block.sum(axis=-1)
    return xr.DataArray(total, dims=("chain", "draw"), coords=sample_coords(post))
