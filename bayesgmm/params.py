"""The fit settings and their constraints, declared once.

:func:`bayesgmm.fit` checks its options here, and :meth:`bayesgmm.BayesianGMM.load` checks
the settings read from a file with the same table, so a setting a fit would refuse is
refused at load too. Each entry of :data:`PARAMETER_CONSTRAINTS` names a setting and the
constraint that validates it (and coerces it: ``priors`` becomes a :class:`~bayesgmm.Priors`);
:func:`check_params` applies them in the table's order, then the checks that involve two
settings. What needs the data (``order_by`` naming a feature) or the environment (an
optional sampler being installed) is checked by the fit itself.
"""

from __future__ import annotations

import numbers

import numpy as np

from .covariance import check_covariance_type
from .priors import Priors
from .seeds import check_random_state
from .validation import MISSING, check_positive_int

__all__ = ["BACKENDS", "COMPONENTS", "DEFAULTS", "METHODS", "NOISE_REGIONS",
           "PARAMETER_CONSTRAINTS", "SAMPLERS", "check_params"]

METHODS = ("nuts", "advi", "fullrank_advi", "map")
SAMPLERS = ("auto", "pymc", "nutpie", "numpyro", "blackjax")
BACKENDS = ("auto", "jax", "numba", "c")
#: The component distributions: Gaussian, or multivariate Student-t (degrees of freedom per
#: component, free under a Gamma prior or fixed by the ``dof`` setting).
COMPONENTS = ("gaussian", "student_t")
#: The regions of a uniform noise component (see :mod:`bayesgmm.likelihood.noise`).
NOISE_REGIONS = ("box", "hypvol", "hull")


class _Integer:
    """An integer >= ``minimum`` (bools refused), or None where ``optional``."""

    def __init__(self, minimum: int, optional: bool = False):
        self.minimum, self.optional = minimum, optional

    def __call__(self, value, name: str):
        if value is None and self.optional:
            return None
        return check_positive_int(value, name, self.minimum)


class _OneOf:
    """One of a few strings."""

    def __init__(self, options: tuple[str, ...]):
        self.options = options

    def __call__(self, value, name: str):
        if not isinstance(value, str) or value not in self.options:
            raise ValueError(f"Unknown {name} {value!r}; choose one of {self.options}.")
        return value


def _open_unit_interval(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {type(value).__name__} "
                        f"{value!r}.")
    if not 0 < float(value) < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}.")
    return float(value)


def _boolean(optional: bool):
    def check(value, name: str):
        if value is None and optional:
            return None
        if not isinstance(value, (bool, np.bool_)):
            allowed = "True, False or None" if optional else "True or False"
            raise TypeError(f"{name} must be {allowed}, got {type(value).__name__} {value!r}.")
        return bool(value)

    return check


def _progressbar(value, name: str):
    """True, False, or "auto" (on where a person watches: see :mod:`bayesgmm.progress`)."""
    if isinstance(value, str) and value == "auto":
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True, False or 'auto', got {type(value).__name__} "
                        f"{value!r}.")
    return bool(value)


def _random_state(value, name: str):
    if value is not None and not isinstance(value, np.random.Generator):
        check_random_state(value, name)
        value = int(value)
    return value


def _dof(value, name: str) -> float | None:
    """None (free degrees of freedom) or a fixed positive number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be None (degrees of freedom under their prior) or a "
                        f"positive number, got {type(value).__name__} {value!r}.")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number (or None), got "
                         f"{value!r}.")
    return float(value)


def _noise(value, name: str) -> str | bool:
    """False (no noise component; None too), True ("box") or a region's name."""
    if value is None or value is False or (isinstance(value, np.bool_) and not value):
        return False
    if value is True or isinstance(value, np.bool_):
        return "box"
    if isinstance(value, str) and value in NOISE_REGIONS:
        return value
    raise ValueError(f"{name} must be False, True (a noise component over the data's "
                     f"bounding box) or one of the regions {NOISE_REGIONS}, got {value!r}.")


def _priors(value, name: str) -> Priors:
    return Priors.coerce(value)


def _covariance_type(value, name: str) -> str:
    return check_covariance_type(value)


def _order_by(value, name: str):
    """None, "auto", a feature name or a column index; the fit checks it against the data."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ValueError(f"{name} must be None, 'auto', a feature name or a column index (an "
                     f"integer >= 0), got {value!r}.")


#: The default of every setting of :func:`bayesgmm.fit` and :class:`bayesgmm.BayesianGMM`:
#: both signatures read them from here.
DEFAULTS = {
    "n_components": 2,
    "method": "nuts",
    "sampler": "auto",
    "draws": 1000,
    "chains": 2,
    "tune": 1000,
    "max_iter": 10_000,
    "n_init": 5,
    "cores": None,
    "batch_size": None,
    "target_accept": 0.8,
    "priors": None,
    "covariance_type": "full",
    "backend": "auto",
    "random_state": None,
    "order_by": None,
    "store_log_likelihood": None,
    "repair_modes": True,
    "progressbar": "auto",
    "missing": "marginalize",
    "component": "gaussian",
    "dof": None,
    "noise": False,
}

#: Every setting of :func:`bayesgmm.fit` and :class:`bayesgmm.BayesianGMM`, and its check.
PARAMETER_CONSTRAINTS = {
    "n_components": _Integer(1),
    "method": _OneOf(METHODS),
    "sampler": _OneOf(SAMPLERS),
    "draws": _Integer(1),
    "chains": _Integer(1),
    "tune": _Integer(0),
    "max_iter": _Integer(1),
    "n_init": _Integer(1),
    "cores": _Integer(1, optional=True),
    "batch_size": _Integer(1, optional=True),
    "target_accept": _open_unit_interval,
    "priors": _priors,
    "covariance_type": _covariance_type,
    "backend": _OneOf(BACKENDS),
    "random_state": _random_state,
    "order_by": _order_by,
    "store_log_likelihood": _boolean(optional=True),
    "repair_modes": _boolean(optional=False),
    "progressbar": _progressbar,
    "missing": _OneOf(MISSING),
    "component": _OneOf(COMPONENTS),
    "dof": _dof,
    "noise": _noise,
}


def check_params(params: dict) -> dict:
    """Validate settings and return them checked and coerced.

    Parameters
    ----------
    params : dict
        Some or all of the settings named in :data:`PARAMETER_CONSTRAINTS`.

    Returns
    -------
    dict
        The same keys, in the table's order: integers as ``int``, ``target_accept`` as
        ``float``, ``priors`` as a :class:`~bayesgmm.Priors`.

    Raises
    ------
    TypeError
        A setting of the wrong type, or a name that is not a setting.
    ValueError
        A setting outside its allowed values; the message names the setting.

    Examples
    --------
    >>> from bayesgmm.params import check_params
    >>> check_params({"draws": 500, "method": "map"})
    {'method': 'map', 'draws': 500}
    >>> check_params({"method": "gibbs"})
    Traceback (most recent call last):
    ...
    ValueError: Unknown method 'gibbs'; choose one of ('nuts', 'advi', 'fullrank_advi', 'map').
    """
    unknown = sorted(set(params) - set(PARAMETER_CONSTRAINTS))
    if unknown:
        raise TypeError(f"Unknown setting(s) {unknown}; the settings are "
                        f"{list(PARAMETER_CONSTRAINTS)}.")
    out = {name: check(params[name], name)
           for name, check in PARAMETER_CONSTRAINTS.items() if name in params}
    if out.get("batch_size") is not None and "method" in out \
            and out["method"] not in ("advi", "fullrank_advi"):
        raise ValueError(f"batch_size (minibatch ADVI) needs method='advi' or "
                         f"'fullrank_advi', got method={out['method']!r}.")
    if out.get("dof") is not None and out.get("component", DEFAULTS["component"]) \
            != "student_t":
        raise ValueError("dof (fixed degrees of freedom) is a setting of Student-t "
                         "components: pass component='student_t' with it, or dof=None.")
    return out
