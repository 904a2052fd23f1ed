"""scikit-learn's own API checks, run on a tiny search budget.

Every check that scikit-learn generates for a classifier runs here. The few
that cannot pass are listed, with the reason, in ``EXPECTED_FAILED_CHECKS``
(and in ``docs/sklearn.rst``); they still run, as expected failures.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sknas import MLPNASClassifier

from conftest import TINY

#: Check name -> why it cannot pass. Keep in sync with docs/sklearn.rst.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "mini-batch Adam on shuffled rows: weighting a row by 2 is not the same "
        "optimisation path as repeating it, as for sklearn's own MLPClassifier",
}


def expected_failed_checks(estimator):
    """The checks of ``EXPECTED_FAILED_CHECKS`` (for ``parametrize_with_checks``)."""
    return dict(EXPECTED_FAILED_CHECKS)


@parametrize_with_checks([MLPNASClassifier(**TINY)], expected_failed_checks=expected_failed_checks)
def test_sklearn_api(estimator, check):
    check(estimator)
