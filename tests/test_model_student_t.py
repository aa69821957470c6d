"""The model with Student-t components (issue 19): its log density against SciPy, and its
MAP on contaminated data against the Gaussian model's."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import gamma, multivariate_t
from sklearn.mixture import GaussianMixture

from bayesgmm.model import build_model, point_from_params, unpack_point
from bayesgmm.priors import Priors
from bayesgmm.standardize import Standardizer


def test_t_model_log_density_matches_scipy(rng):
    """The observed variable's term is the t mixture's log-likelihood (SciPy's
    multivariate_t), and ``dof`` has the Gamma(dof_shape, dof_rate) prior."""
    n, d, k = 80, 2, 2
    Z = rng.standard_t(4.0, size=(n, d))
    priors = Priors(dof_shape=3.0, dof_rate=0.2)
    model = build_model(Z, k, priors, component="student_t")
    assert {v.name for v in model.free_RVs} >= {"dof", "mu", "weights"}
    point = point_from_params(np.array([0.3, 0.7]), rng.normal(size=(k, d)),
                              np.linalg.cholesky(np.array([[[1.0, 0.3], [0.3, 2.0]],
                                                           [[0.5, -0.1], [-0.1, 0.8]]])))
    point["dof"] = np.array([2.5, 9.0])
    params = unpack_point(point, k, d)
    covs = params["chols"] @ np.swapaxes(params["chols"], 1, 2)
    expected = logsumexp(np.stack([np.log(params["weights"][j]) + multivariate_t(
        params["means"][j], covs[j], df=point["dof"][j]).logpdf(Z) for j in range(k)],
        axis=1), axis=1).sum()
    from pymc.model.transform.conditioning import remove_value_transforms

    plain = remove_value_transforms(model)  # the constrained values as inputs
    terms = plain.compile_logp(vars=[plain["x"], plain["dof"]], sum=False, jacobian=False)
    x_term, dof_term = terms({v.name: point[v.name] for v in plain.value_vars})
    np.testing.assert_allclose(x_term.sum(), expected, rtol=1e-10)
    # PyMC's Gamma log density is SciPy's to 2e-9 (measured: its own rounding).
    np.testing.assert_allclose(dof_term, gamma(3.0, scale=1 / 0.2).logpdf(point["dof"]),
                               rtol=0, atol=1e-8)


def test_t_model_refuses_what_it_does_not_handle_yet(rng):
    Z = rng.normal(size=(20, 2))
    with pytest.raises(ValueError, match="component must be one of"):
        build_model(Z, 2, component="cauchy")
    Z[0, 0] = np.nan
    with pytest.raises(NotImplementedError, match="Minibatch ADVI with Student-t"):
        build_model(Z, 2, component="student_t", batch_size=10)
    # Missing entries without minibatches: the t marginals (tests/test_student_t_fit.py).
    assert "dof" in build_model(Z, 2, component="student_t").named_vars


def contaminated(seed: int, n: int = 300):
    """Three unit-variance Gaussian groups in 2-D plus 5% outliers, uniform over a box ten
    times the groups' spread; the inliers come first."""
    rng = np.random.default_rng(seed)
    mu = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, 5.0]])
    X = mu[rng.integers(3, size=n)] + rng.normal(size=(n, 2))
    lo, hi = X.min(axis=0), X.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) * 5
    return np.vstack([X, rng.uniform(centre - half, centre + half, size=(n // 20, 2))]), mu


def map_point(model, init: dict, names: list[str]) -> dict:
    """The model's MAP (L-BFGS on its unconstrained values, no Jacobian) from ``init``
    (constrained values): the constrained values of ``names`` there."""
    from pymc.blocking import DictToArrayBijection, RaveledVars
    from pymc.initial_point import make_initial_point_fn
    from scipy.optimize import minimize

    x0 = make_initial_point_fn(model=model, overrides=init, jitter_rvs=set(),
                               return_transformed=True)(0)
    raveled = DictToArrayBijection.map({v.name: x0[v.name] for v in model.value_vars})
    logp = model.compile_logp(jacobian=False)
    dlogp = model.compile_dlogp(jacobian=False)

    def unravel(x):
        return DictToArrayBijection.rmap(RaveledVars(x, raveled.point_map_info))

    def negative(x):
        point = unravel(x)
        return -float(logp(point)), -np.asarray(dlogp(point), dtype=float)

    res = minimize(negative, raveled.data, jac=True, method="L-BFGS-B",
                   options={"maxiter": 5000})
    rvs = [model[name] for name in names]
    values = model.compile_fn(model.replace_rvs_by_values(rvs), inputs=model.value_vars,
                              point_fn=True, on_unused_input="ignore")(unravel(res.x))
    return dict(zip(names, values, strict=True))


def largest_mean_error(means, truth):
    dist = np.linalg.norm(means[:, None] - truth[None], axis=2)
    rows, cols = linear_sum_assignment(dist)
    return dist[rows, cols].max()


# The default run checks the same through fit() (tests/test_student_t_fit.py).
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_t_components_keep_their_means_where_outliers_pull_the_gaussian_ones(seed):
    """MAP of both models from the same good start (EM on the inliers): the Gaussian
    model's means move by more than 1.5 (group sd 1) to take in the outliers; the t
    model's stay within 0.35 of the truth (as close as the inliers' EM: 0.12 and 0.22),
    one component's degrees of freedom falling to about 1 to carry the outliers."""
    X, truth = contaminated(seed)
    std = Standardizer.fit(X)
    Z = std.transform(X)
    em = GaussianMixture(3, n_init=5, random_state=seed).fit(Z[:300])
    start = point_from_params(em.weights_, em.means_, np.linalg.cholesky(em.covariances_))
    errors = {}
    for component in ("gaussian", "student_t"):
        model = build_model(Z, 3, component=component)
        if component == "gaussian":
            found = map_point(model, start, ["mu"])
        else:
            found = map_point(model, {**start, "dof": np.full(3, 5.0)}, ["mu", "dof"])
            dof = found["dof"]
        errors[component] = largest_mean_error(std.means_to_user(found["mu"]), truth)
    inliers = largest_mean_error(std.means_to_user(em.means_), truth)
    assert errors["gaussian"] > 1.5, errors
    assert errors["student_t"] < 0.35 and errors["student_t"] < inliers + 0.05, errors
    assert dof.min() < 2.0 and np.sort(dof)[1] > 5.0, dof
