"""The fit settings: every bad option is refused with a message that says what to change."""

import numpy as np
import pytest

from bayesgmm import BayesianGMM, fit

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
