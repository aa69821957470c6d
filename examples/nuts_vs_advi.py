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
# # NUTS, ADVI, full-rank ADVI and MAP on the same model
#
# All four fit one PyMC model and return the same kind of result, so they can be compared
# directly: the variational fits are much faster and recover the posterior means, but
# mean-field ADVI underestimates the posterior spread, and MAP has none. With
# `BAYESGMM_EXAMPLES_SMALL=1` it runs on small data (as in the tests and the docs build).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayesgmm import BayesianGMM
from bayesgmm.datasets import make_mixture
from bayesgmm.plotting import plot_clusters

SMALL = os.environ.get("BAYESGMM_EXAMPLES_SMALL") == "1"
truth = make_mixture(300 if SMALL else 1000, 3, 2, separation=5.0, random_state=3)

# %% [markdown]
# One fit per method, same data, same seed. About 1,000 draws are needed for R-hat <= 1.01
# over all parameters.

# %%
rows, fits = [], {}
for method in ["nuts", "advi", "fullrank_advi", "map"]:
    t0 = time.perf_counter()
    model = BayesianGMM(3, method=method, draws=1000, tune=1000, random_state=0)
    fits[method] = model.fit(truth.X)
    post = model.idata_["posterior"]
    rows.append({"method": method, "seconds": time.perf_counter() - t0,
                 # Posterior sd of the component means (0 for MAP: a point).
                 "mean sd of means": float(post["means"].std(("chain", "draw")).mean())})

# %% [markdown]
# Components are in the same order in every fit: each is relabelled to its EM start, and
# the EM starts coincide (same data, same seed). The largest difference from NUTS's
# posterior means:

# %%
ref = fits["nuts"].means_
for row in rows:
    est = fits[row["method"]].means_
    order = [int(np.argmin(((est - m) ** 2).sum(1))) for m in ref]
    row["max |means - NUTS means|"] = float(np.abs(est[order] - ref).max())
table = pd.DataFrame(rows).set_index("method")
table.round(4)

# %% [markdown]
# The thin ellipses are posterior draws: mean-field ADVI's spread less than NUTS's.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained", sharey=True)
for ax, method in zip(axes, ["nuts", "advi"], strict=True):
    plot_clusters(fits[method], truth.X, ax=ax)
    ax.set_title(method)

# %% [markdown]
# Every fit is the same kind of object: its diagnostics say what applies to its method.

# %%
fits["advi"].diagnose()
