# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Bayes vs EM vs direct maximum likelihood, and the singularity
#
# A mixture p(x) = sum_k w_k N(x | theta_k) can be fitted by EM, by plain gradient ascent on
# the likelihood (a "network of Gaussian units"), or as a Bayesian model. This notebook
# checks, on data with a known answer:
#
# 1. the weights are P(group), each Gaussian is P(x | group), and the responsibilities are
#    P(group | x) by Bayes' rule: w_k N_k(x) / sum_j w_j N_j(x), numerically;
# 2. EM and gradient ascent reach the same maximum of the likelihood from the same start;
# 3. gradient ascent started with a component on one data point collapses onto it (the
#    likelihood is unbounded), while the Bayesian log posterior falls along the same path;
# 4. where Bayesian and EM assignments differ, and why: the posterior averages over
#    parameter uncertainty, so points between clusters get less extreme probabilities.
#
# With `BAYESGMM_EXAMPLES_SMALL=1` it runs on small data (as in the tests and the docs
# build).

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from bayesgmm import BayesianGMM, ConvergenceWarning, compare_assignments
from bayesgmm.datasets import make_mixture
from bayesgmm.ml import fit_em, fit_ml_gradient
from bayesgmm.plotting import plot_disagreements, plot_singularity_path
from bayesgmm.singularity import singularity_path

SMALL = os.environ.get("BAYESGMM_EXAMPLES_SMALL") == "1"
n = 300 if SMALL else 800
# Two overlapping clusters (3.5 sds apart) and a distant third.
truth = make_mixture(n, 3, 2, weights=[0.35, 0.35, 0.3],
                     means=[[-1.75, 0.0], [1.75, 0.0], [0.0, 8.0]],
                     covariances=np.stack([np.eye(2)] * 3), random_state=0)
X = truth.X
test = make_mixture(n, 3, 2, weights=truth.weights, means=truth.means,
                    covariances=truth.covariances, random_state=1)

# %% [markdown]
# ## 1. EM, and Bayes' rule by hand

# %%
em = fit_em(X, 3, random_state=0)
dens = np.stack([em.weights[k] * multivariate_normal(em.means[k], em.covariances[k]).pdf(X)
                 for k in range(3)], axis=1)
by_hand = dens / dens.sum(axis=1, keepdims=True)
bayes_rule_error = float(np.abs(by_hand - em.responsibilities).max())
print(f"EM: log-likelihood {em.log_likelihood:.3f}; responsibilities = "
      f"w_k N_k / sum_j w_j N_j to {bayes_rule_error:.1e}")

# %% [markdown]
# ## 2. Gradient ascent on the likelihood, and EM from the same start

# %%
ml = fit_ml_gradient(X, 3, random_state=0)
start = ml.info["init"]
gm = GaussianMixture(3, covariance_type="full", reg_covar=0.0, tol=1e-12, max_iter=5000,
                     weights_init=start["weights"], means_init=start["means"],
                     precisions_init=np.linalg.inv(start["covariances"])).fit(X)
em_same = float(gm.score(X) * X.shape[0])
ml_vs_em = abs(ml.log_likelihood - em_same) / abs(em_same)
print(f"Gradient ML {ml.log_likelihood:.6f} vs EM from the same start {em_same:.6f} "
      f"(relative difference {ml_vs_em:.1e})")

# %% [markdown]
# ## 3. The singularity: a component on data point 0 with a tiny scale
#
# Gradient ascent diverges (and says so, with a `ConvergenceWarning`, caught here); along
# the same collapse, the Bayesian log posterior falls.

# %%
means, covs = em.means.copy(), em.covariances.copy()
means[0] = X[0]
covs[0] = np.diag((0.01 * X.std(axis=0)) ** 2)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", ConvergenceWarning)
    collapsed = fit_ml_gradient(X, 3, init={"weights": em.weights, "means": means,
                                            "covariances": covs})
collapse_warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
print(f"diverged={collapsed.info['diverged']}, smallest scale "
      f"{collapsed.info['min_scale']:.1e} feature sds, log-likelihood still rising "
      f"({collapsed.info['log_likelihood_path'][-1]:.1f})")
path = singularity_path(X, 3, 0, random_state=0)
path.iloc[[0, len(path) // 2, -1]]

# %% [markdown]
# ## 4. The Bayesian fit, and where its assignments differ from EM's
#
# Two clusters overlap: 2,000 draws per chain keep R-hat reliably under 1.01.

# %%
model = BayesianGMM(3, draws=2000, random_state=0).fit(X)
comparison = compare_assignments(model, em, X, y_true=truth.labels, X_test=test.X)
print(comparison)
between = comparison.points["confident_other_not_bayes"].to_numpy()
if between.any():
    print(f"the {int(between.sum())} points where EM is sure but the posterior is not lie "
          f"between the overlapping clusters (|x| < {np.abs(X[between, 0]).max():.2f} on "
          f"the first axis)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
plot_singularity_path(path, ax=axes[0])
_ = plot_disagreements(comparison, X, ax=axes[1])
