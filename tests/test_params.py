"""The fit settings: one table of constraints, one table of defaults (bayesgmm.params)."""

import inspect

import pytest

from bayesgmm import BayesianGMM, fit
from bayesgmm.cli import COVARIANCE_TYPES as CLI_COVARIANCE_TYPES
from bayesgmm.cli import build_parser
from bayesgmm.covariance import COVARIANCE_TYPES
from bayesgmm.params import DEFAULTS, PARAMETER_CONSTRAINTS, SAMPLERS, check_params


def _defaults(func, skip=()):
    return {name: p.default for name, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty and name not in skip}


def test_every_setting_has_a_default_and_a_constraint():
    assert set(DEFAULTS) == set(PARAMETER_CONSTRAINTS)
    # The defaults pass their own checks unchanged (priors None stays None for the fit).
    checked = check_params(dict(DEFAULTS))
    assert {k: v for k, v in checked.items() if k != "priors"} == \
        {k: v for k, v in DEFAULTS.items() if k != "priors"}


def test_fit_and_estimator_share_the_defaults():
    assert _defaults(fit) == DEFAULTS
    assert _defaults(BayesianGMM.__init__) == DEFAULTS
    # scikit-learn reads the estimator's settings from its signature.
    assert BayesianGMM().get_params() == DEFAULTS


def test_command_line_defaults_agree_with_the_package():
    # The CLI writes its defaults itself (it starts without importing PyMC): they must
    # be the package's.
    args = vars(build_parser().parse_args(["fit", "data.csv", "--components", "3"]))
    for name in ("method", "sampler", "draws", "tune", "chains", "covariance_type"):
        assert args[name] == DEFAULTS[name], name
    assert tuple(CLI_COVARIANCE_TYPES) == COVARIANCE_TYPES
    for sampler in SAMPLERS:  # every sampler is accepted, and nothing else
        assert vars(build_parser().parse_args(
            ["fit", "data.csv", "-k", "2", "--sampler", sampler]))["sampler"] == sampler
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["fit", "data.csv", "-k", "2", "--sampler", "gibbs"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("name, value, error", [
    ("draws", 0, ValueError), ("draws", 2.5, TypeError), ("method", "gibbs", ValueError),
    ("target_accept", 1.0, ValueError), ("random_state", -1, ValueError),
    ("progressbar", "yes", TypeError), ("n_components", True, TypeError),
])
def test_bad_settings_name_the_setting(name, value, error):
    with pytest.raises(error, match=name):
        check_params({name: value})
