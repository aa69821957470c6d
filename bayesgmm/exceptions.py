"""The warnings and errors bayesgmm raises, in one place every module imports from.

``FitWarning`` and its subclasses are about a fit's result, ``DataWarning`` about the data
passed in, ``SavedFitError`` and ``UnverifiedFitWarning`` about files written by
:meth:`bayesgmm.BayesianGMM.save`.
"""

from __future__ import annotations

__all__ = ["FitWarning", "ConvergenceWarning", "LabelSwitchingWarning", "DataWarning",
           "SavedFitError", "UnverifiedFitWarning"]


class FitWarning(UserWarning):
    """A fit finished, but its result needs care (see the message for advice)."""


class ConvergenceWarning(FitWarning):
    """The sampler or optimiser did not converge well enough to trust the result."""


class LabelSwitchingWarning(FitWarning):
    """Chains or draws sit in different orders of the components."""


class DataWarning(UserWarning):
    """The data can be fitted, but something about it deserves attention."""


class SavedFitError(ValueError):
    """A file that cannot be loaded as a bayesgmm fit.

    It is unreadable, damaged, from a newer bayesgmm, or holds settings or a posterior
    that are not valid; the message names the file and what is wrong.
    """


class UnverifiedFitWarning(UserWarning):
    """A fit saved by an older bayesgmm, without checksums: its contents cannot be verified."""
