"""Prior settings: frozen, and checked."""

import pytest

from bayesgmm import Priors


def test_priors_are_frozen_and_checked():
    p = Priors()
    with pytest.raises(AttributeError):
        p.lkj_eta = 3.0  # frozen dataclass
    with pytest.raises(TypeError, match="positive number"):
        Priors(mean_scale="big")
