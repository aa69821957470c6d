"""The fit settings: every bad option is refused with a message that says what to change.

One table of constraints and one of defaults (bayesgmm.params): fit, the estimator
and the command line agree on them.
"""

import inspect

import numpy as np
import pytest

from bayesgmm import BayesianGMM, cli, fit
from bayesgmm.cli import COMPONENTS as CLI_COMPONENTS
from bayesgmm.cli import COVARIANCE_TYPES as CLI_COVARIANCE_TYPES
from bayesgmm.cli import NOISE_REGIONS as CLI_NOISE_REGIONS
from bayesgmm.cli import build_parser
from bayesgmm.covariance import COVARIANCE_TYPES
from bayesgmm.likelihood.noise import NOISE_REGIONS
from bayesgmm.params import COMPONENTS, DEFAULTS, PARAMETER_CONSTRAINTS, SAMPLERS, check_params
from bayesgmm.params import NOISE_REGIONS as PARAMS_NOISE_REGIONS
from bayesgmm.selection import FAMILIES

GOOD = np.random.default_rng(0).normal(size=(30, 2))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(n_components=0), ValueError, "n_components must be an integer >= 1"),
        (dict(n_components=2.5), TypeError, "n_components must be an integer"),
        (dict(n_components="3"), TypeError, "n_components must be an integer"),
        (dict(n_components=True), TypeError, "n_components must be an integer"),
        (dict(method="gibbs"), ValueError, "Unknown method 'gibbs'; choose one of"),
        (dict(sampler="stan"), ValueError, "Unknown sampler 'stan'"),
        (dict(draws=0), ValueError, "draws must be an integer >= 1"),
        (dict(chains=0), ValueError, "chains must be an integer >= 1"),
        (dict(tune=-1), ValueError, "tune must be an integer >= 0"),
        (dict(target_accept=1.5), ValueError, "target_accept must lie in"),
        (dict(backend="cuda"), ValueError, "Unknown backend"),
        (dict(random_state="seed"), TypeError, "random_state must be"),
        (dict(priors={"lkj_eta": -1}), ValueError, "lkj_eta must be a positive"),
        (dict(priors={"eta": 2}), TypeError, "Unknown prior setting"),
        (dict(priors=[1, 2]), TypeError, "priors must be"),
        (dict(component="cauchy"), ValueError, "Unknown component 'cauchy'"),
        (dict(component="student_t", dof=0.0), ValueError, "dof must be a positive"),
        (dict(component="student_t", dof=np.inf), ValueError, "dof must be a positive"),
        (dict(component="student_t", dof="5"), TypeError, "dof must be None"),
        (dict(dof=5.0), ValueError, "dof .* is a setting of Student-t components"),
    ],
)
def test_bad_options_are_refused(kwargs, exc, match):
    kwargs = {"n_components": 2, **kwargs}
    with pytest.raises(exc, match=match):
        fit(GOOD, **kwargs)


def test_batch_size_needs_vi():
    with pytest.raises(ValueError, match="batch_size .*needs method='advi'"):
        BayesianGMM(2, method="nuts", batch_size=10).fit(np.random.default_rng(0).normal(
            size=(30, 2)))


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
    # sample_weight and labels are data, passed to fit as X is (BayesianGMM.fit takes them
    # too), not settings.
    assert _defaults(fit, skip=("sample_weight", "labels")) == DEFAULTS
    assert _defaults(BayesianGMM.__init__) == DEFAULTS
    # scikit-learn reads the estimator's settings from its signature.
    assert BayesianGMM().get_params() == DEFAULTS


def test_command_line_defaults_agree_with_the_package():
    # The CLI writes its defaults itself (it starts without importing PyMC): they must
    # be the package's.
    args = vars(build_parser().parse_args(["fit", "data.csv", "--components", "3"]))
    for name in ("method", "sampler", "draws", "tune", "chains", "covariance_type",
                 "component", "dof"):
        assert args[name] == DEFAULTS[name], name
    assert tuple(CLI_COVARIANCE_TYPES) == COVARIANCE_TYPES
    assert tuple(CLI_COMPONENTS) == COMPONENTS
    assert tuple(CLI_NOISE_REGIONS) == NOISE_REGIONS == PARAMS_NOISE_REGIONS
    assert cli.FAMILIES == FAMILIES
    assert cli._noise_setting(args["noise"]) is DEFAULTS["noise"]
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
