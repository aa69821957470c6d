"""Fingerprints of fitted posteriors: SHA-256 of every posterior array, per method.

A restructuring that should not change behaviour must leave these bitwise equal::

    .venv/bin/python -m benchmarks.fingerprint > before.json   # on the old commit
    .venv/bin/python -m benchmarks.fingerprint > after.json    # on the new one
    diff before.json after.json

The fits are small (blobs of 150 rows in 2-D, three components; short chains), one per
fitting path: NUTS with every installed sampler, mean-field and full-rank ADVI, minibatch
ADVI and MAP (full and diagonal covariances), and the EM and gradient ML baselines.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import warnings

import numpy as np


def _digest(tree) -> dict[str, str]:
    out = {}
    for group in ("posterior", "initial_point", "relabeling", "log_likelihood"):
        if group not in tree.children:
            continue
        ds = tree[group].to_dataset()
        for name in sorted(ds.data_vars):
            values = np.ascontiguousarray(ds[name].to_numpy())
            out[f"{group}/{name}"] = hashlib.sha256(values.tobytes()).hexdigest()[:16]
    return out


def fingerprints() -> dict[str, dict[str, str]]:
    from bayesgmm import fit
    from bayesgmm.datasets import make_mixture
    from bayesgmm.ml import fit_em, fit_ml_gradient

    X = make_mixture(n_samples=150, n_components=3, n_features=2, random_state=1).X
    runs = {
        "map": dict(method="map"),
        "map-diag": dict(method="map", covariance_type="diag"),
        "advi": dict(method="advi", draws=200, max_iter=1500),
        "fullrank_advi": dict(method="fullrank_advi", draws=200, max_iter=1500),
        "advi-minibatch": dict(method="advi", draws=200, max_iter=1500, batch_size=50),
    }
    for sampler in ("pymc", "nutpie", "numpyro", "blackjax"):
        if sampler == "pymc" or importlib.util.find_spec(sampler) is not None:
            runs[f"nuts-{sampler}"] = dict(method="nuts", sampler=sampler, draws=100,
                                           tune=100, chains=2, cores=1)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kwargs in runs.items():
            out[name] = _digest(fit(X, 3, random_state=7, **kwargs))
        em = fit_em(X, 3, random_state=7)
        ml = fit_ml_gradient(X, 3, random_state=7)
    for name, est in (("em", em), ("ml_gradient", ml)):
        out[name] = {key: hashlib.sha256(np.ascontiguousarray(getattr(est, key)).tobytes())
                     .hexdigest()[:16] for key in ("weights", "means", "covariances")}
    return out


if __name__ == "__main__":
    json.dump(fingerprints(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
