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
# # Quick start
#
# Fit a Bayesian Gaussian mixture, look at it, check it, use it: on data with a known
# answer, three 2-D Gaussians. This notebook is a plain Python file (jupytext's percent
# format): open it in Jupyter, or run it with `python examples/quickstart.py`. With
# `BAYESGMM_EXAMPLES_SMALL=1` it runs on small data (as in the tests and the docs build).

# %%
import os

import matplotlib.pyplot as plt
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGMM
from bayesgmm.assignments import assignment_summary
from bayesgmm.datasets import make_mixture
from bayesgmm.plotting import plot_clusters, plot_density, plot_ppc, plot_trace, plot_weights

SMALL = os.environ.get("BAYESGMM_EXAMPLES_SMALL") == "1"
truth = make_mixture(200 if SMALL else 600, 3, 2, separation=5.0, random_state=1)

# %% [markdown]
# ## Fit
#
# NUTS (the default): every chain starts from an EM solution, and the draws are relabelled
# so that component k means the same cluster in every draw and chain. About 1,000 draws
# per chain are needed for R-hat <= 1.01 over all parameters. In a notebook the fitted
# model shows what was fitted, how long it took, the diagnostics' verdict and the weights.

# %%
model = BayesianGMM(3, draws=1000, tune=1000, random_state=0)
model.fit(truth.X)

# %% [markdown]
# ## Check before you trust
#
# R-hat, ESS, divergences, label switching, empty or near-singular components; each problem
# comes with advice.

# %%
model.diagnose()

# %%
model.summary(var_names=["weights", "means"])

# %%
print("true weights:", truth.weights.round(3))

# %% [markdown]
# The relabelled posterior, by ArviZ's plots: each line is one component in every chain.

# %%
pc = plot_trace(model, ["weights"])

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
plot_weights(model, ax=axes[0])
_ = plot_density(model, ax=axes[1])

# %% [markdown]
# ## Assignments with their uncertainty
#
# P(group | x) averaged over the posterior, the label, and how unsure each point is.

# %%
table = assignment_summary(model)
ari = adjusted_rand_score(truth.labels, table["label"])
print(f"ARI vs truth: {ari:.3f}; points under 90% certain: "
      f"{int((table['uncertainty'] > 0.1).sum())} of {len(table)}")
table.head()

# %%
_ = plot_clusters(model, truth.X)

# %% [markdown]
# ## Does the model fit? A posterior predictive check
#
# Data sets replicated from posterior draws, against the data: marginals on the diagonal,
# pairs below.

# %%
_ = plot_ppc(model, n_replicates=20)
