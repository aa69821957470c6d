"""bayesgmm: Bayesian Gaussian mixture models on PyMC.

One well-posed model (Dirichlet weights, LKJ-Cholesky covariances with inverse-gamma
scales, assignments summed out) fitted by NUTS, ADVI, full-rank ADVI or MAP; results as
``xarray.DataTree`` objects that ArviZ understands.
"""

from importlib.metadata import PackageNotFoundError, version

from .classifier import BayesianGMMClassifier
from .compare import compare_assignments
from .conditional import conditional, impute
from .diagnostics import diagnose, summary
from .estimator import BayesianGMM
from .exceptions import (
    ConvergenceWarning,
    DataWarning,
    FitWarning,
    LabelSwitchingWarning,
    SavedFitError,
    UnverifiedFitWarning,
)
from .fitting.pipeline import fit
from .priors import Priors
from .progress import quiet_notebook_imports
from .relabel import relabel

quiet_notebook_imports()

try:
    __version__ = version("bayesgmm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "BayesianGMM",
    "BayesianGMMClassifier",
    "ConvergenceWarning",
    "DataWarning",
    "FitWarning",
    "LabelSwitchingWarning",
    "Priors",
    "SavedFitError",
    "UnverifiedFitWarning",
    "compare_assignments",
    "conditional",
    "diagnose",
    "fit",
    "impute",
    "relabel",
    "summary",
    "__version__",
]
