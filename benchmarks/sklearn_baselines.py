"""scikit-learn's GaussianMixture and BayesianGaussianMixture on the same data, for context.

Both with full covariances and scikit-learn's defaults otherwise (``n_init=1``,
``max_iter=100``), on the raw data; the same accuracy measures as the VI section.
"""

from __future__ import annotations

import warnings

from .common import Section, Stopwatch, case_label, failure, make_data, means_error
from .sizes import Size


def _estimators(k: int, seed: int):
    from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

    return {
        "GaussianMixture": GaussianMixture(k, covariance_type="full", random_state=seed),
        "BayesianGaussianMixture": BayesianGaussianMixture(
            n_components=k, covariance_type="full", random_state=seed),
    }


def cases(size: Size) -> list[tuple[int, int, int]]:
    """Every (D, N, K) the NUTS and VI sections fit, without repeats."""
    out = [(d, n, 3) for d, n in size.nuts_cases] + [size.vi_case, size.minibatch_case]
    return list(dict.fromkeys(out))


def run(size: Size, opts) -> Section:
    from sklearn.exceptions import ConvergenceWarning

    section = Section("sklearn", "scikit-learn for context",
                      "Full covariances, scikit-learn defaults otherwise (n_init=1, "
                      "max_iter=100); wall time of .fit on the raw data.")
    table = section.table("Fits", ["case", "estimator", "wall s", "iterations", "converged",
                                   "mean error", "weight error", "status"])
    for d, n, k in cases(size):
        for name, est in _estimators(k, opts.seed).items():
            row = {"case": case_label(d, n, k), "estimator": name}
            try:
                truth = make_data(n, d, k, opts.seed)
                with warnings.catch_warnings():
                    # Reported in the 'converged' column instead.
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    watch = Stopwatch()
                    est.fit(truth.X)
                    wall = watch.seconds
                err_mean, err_weight = means_error(truth, est.weights_, est.means_)
                row.update(**{"wall s": wall, "iterations": int(est.n_iter_),
                              "converged": "yes" if est.converged_ else "no",
                              "mean error": err_mean, "weight error": err_weight,
                              "status": "ok"})
            except Exception as exc:  # a failed configuration is a row, not a crash
                row["status"] = failure(exc)
            table.rows.append(row)
            opts.log(f"  sklearn {row['case']} {name}: {row.get('wall s')}")
    return section
