"""scikit-learn's estimator contract for :class:`bayesgmm.BayesianGMM` (MAP fits)."""

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import BayesianGMM


@parametrize_with_checks([BayesianGMM(2, method="map", random_state=0)])
def test_scikit_learn_check(estimator, check):
    with warnings.catch_warnings():
        # The checks' data are tiny and random (15 rows of 30 uniform features, 1 row):
        # the fit's warnings about them are right, and not what the checks look at.
        warnings.simplefilter("ignore")
        check(estimator)
