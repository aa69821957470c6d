r"""Maximum-likelihood point estimates to compare the Bayesian fit with.

Every estimate is a :class:`PointEstimate`: EM (:func:`fit_em`) or direct gradient ascent on
the likelihood (:func:`fit_ml_gradient`). :func:`bayesgmm.singularity.singularity_path` shows
why maximum likelihood needs care and why the Bayesian model does not.

The likelihood of a Gaussian mixture with full covariances is unbounded: a component whose
mean sits on a data point and whose covariance shrinks to zero drives it to :math:`+\infty`
(roughly :math:`-D \log s` for a scale :math:`s`). EM and gradient ascent therefore find local
maxima at best; both detect the degenerate ones and say so, rather than reporting a larger
log-likelihood as a better fit.
"""

from .em import EM_STRATEGIES, fit_em
from .gradient import fit_ml_gradient
from .point_estimate import PointEstimate

__all__ = ["PointEstimate", "fit_em", "fit_ml_gradient", "EM_STRATEGIES"]
