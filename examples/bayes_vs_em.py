"""Bayes vs EM vs direct maximum likelihood, and the singularity of maximum likelihood.

A mixture p(x) = sum_k w_k N(x | theta_k) can be fitted by EM, by plain gradient ascent on the
likelihood (a "network of Gaussian units"), or as a Bayesian model. This example checks, on
data with a known answer:

1. the weights are P(group), each Gaussian is P(x | group), and the responsibilities are
   P(group | x) by Bayes' rule: w_k N_k(x) / sum_j w_j N_j(x), numerically;
2. EM and gradient ascent reach the same maximum of the likelihood from the same start;
3. gradient ascent started with a component on one data point collapses onto it (the
   likelihood is unbounded), while the Bayesian log posterior falls along the same path;
4. where Bayesian and EM assignments differ, and why: the posterior averages over
   parameter uncertainty, so points between clusters get less extreme probabilities.

Run:  python examples/bayes_vs_em.py [--small] [--out DIR]
"""

import argparse
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402

from bayesgmm import BayesianGMM, ConvergenceWarning, compare_assignments  # noqa: E402
from bayesgmm.datasets import make_mixture  # noqa: E402
from bayesgmm.ml import fit_em, fit_ml_gradient
from bayesgmm.plotting import plot_disagreements, plot_singularity_path  # noqa: E402
from bayesgmm.singularity import singularity_path  # noqa: E402


def main(small: bool = False, out: str = "out/examples") -> dict:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 300 if small else 800
    # Two overlapping clusters (3.5 sds apart) and a distant third.
    truth = make_mixture(n, 3, 2, weights=[0.35, 0.35, 0.3],
                         means=[[-1.75, 0.0], [1.75, 0.0], [0.0, 8.0]],
                         covariances=np.stack([np.eye(2)] * 3), random_state=0)
    X = truth.X
    test = make_mixture(n, 3, 2, weights=truth.weights, means=truth.means,
                        covariances=truth.covariances, random_state=1)

    # 1. EM, and Bayes' rule by hand.
    em = fit_em(X, 3, random_state=0)
    dens = np.stack([em.weights[k] * multivariate_normal(em.means[k], em.covariances[k]).pdf(X)
                     for k in range(3)], axis=1)
    by_hand = dens / dens.sum(axis=1, keepdims=True)
    bayes_rule_error = float(np.abs(by_hand - em.responsibilities).max())
    print(f"1. EM: log-likelihood {em.log_likelihood:.3f}; responsibilities = "
          f"w_k N_k / sum_j w_j N_j to {bayes_rule_error:.1e}")

    # 2. Gradient ascent on the likelihood, from one k-means start, and EM from the same one.
    ml = fit_ml_gradient(X, 3, random_state=0)
    em_same = fit_em_from(X, ml.info["init"])
    rel = abs(ml.log_likelihood - em_same) / abs(em_same)
    print(f"2. Gradient ML {ml.log_likelihood:.6f} vs EM from the same start {em_same:.6f} "
          f"(relative difference {rel:.1e})")

    # 3. The singularity: a component on data point 0 with a tiny scale.
    means, covs = em.means.copy(), em.covariances.copy()
    means[0] = X[0]
    covs[0] = np.diag((0.01 * X.std(axis=0)) ** 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        collapsed = fit_ml_gradient(X, 3, init={"weights": em.weights, "means": means,
                                                "covariances": covs})
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    print(f"3. Gradient ML started on a point: diverged={collapsed.info['diverged']}, "
          f"smallest scale {collapsed.info['min_scale']:.1e} feature sds, log-likelihood "
          f"still rising ({collapsed.info['log_likelihood_path'][-1]:.1f})")
    path = singularity_path(X, 3, 0, random_state=0)
    print("   along the collapse: ML log-likelihood "
          f"{path.log_likelihood.iloc[0]:.1f} -> {path.log_likelihood.iloc[-1]:.1f}, "
          f"Bayesian log posterior {path.log_posterior.iloc[0]:.1f} -> "
          f"{path.log_posterior.iloc[-1]:.1f}")

    # 4. The Bayesian fit, and where its assignments differ from EM's.
    # Two clusters overlap: 2,000 draws per chain keep R-hat reliably under 1.01.
    model = BayesianGMM(3, draws=2000, random_state=0).fit(X)
    comparison = compare_assignments(model, em, X, y_true=truth.labels, X_test=test.X)
    print("4.", comparison)
    between = comparison.points["confident_other_not_bayes"].to_numpy()
    if between.any():
        print(f"   the {int(between.sum())} points where EM is sure but the posterior is not "
              f"lie between the overlapping clusters (|x| < "
              f"{np.abs(X[between, 0]).max():.2f} on the first axis)")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_singularity_path(path, ax=axes[0])
    plot_disagreements(comparison, X, ax=axes[1])
    fig.tight_layout()
    fig.savefig(out_dir / "bayes_vs_em.png", dpi=100)
    plt.close(fig)
    return {"bayes_rule_error": bayes_rule_error, "ml_vs_em": rel, "collapsed": collapsed,
            "collapse_warned": warned, "path": path, "comparison": comparison,
            "X": X}


def fit_em_from(X, start) -> float:
    """EM (scikit-learn, no regularisation) from a given start: its total log-likelihood."""
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(len(start["weights"]), covariance_type="full", reg_covar=0.0,
                         tol=1e-12, max_iter=5000, weights_init=start["weights"],
                         means_init=start["means"],
                         precisions_init=np.linalg.inv(start["covariances"])).fit(X)
    return float(gm.score(X) * X.shape[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="small data")
    parser.add_argument("--out", default="out/examples")
    args = parser.parse_args()
    main(small=args.small, out=args.out)
