"""From mixture components to clusters.

- :func:`partition`: the point estimate of the partition that minimises the posterior
  expected variation of information or Binder's loss, with its credible ball and each
  point's uncertainty (:mod:`bayesgmm.clusters.partition`);
- :func:`merge_components`: clusters made of several components, by entropy (Baudry et al.
  2010) or misclassification probability (Hennig 2010), each merge with its posterior
  probability (:mod:`bayesgmm.clusters.merge`);
- :func:`nonempty_prior`: the prior on the number of non-empty components a Dirichlet
  concentration implies (:mod:`bayesgmm.clusters.prior`).

ICL, for the EM baselines, is :meth:`bayesgmm.ml.PointEstimate.icl`.
"""

from .merge import MERGE_METHODS, Merge, merge_components
from .partition import (
    LOSSES,
    CredibleBall,
    Partition,
    credible_ball,
    draw_labels,
    expected_loss,
    partition,
    partition_distance,
)
from .prior import nonempty_prior

__all__ = ["LOSSES", "MERGE_METHODS", "CredibleBall", "Merge", "Partition", "credible_ball",
           "draw_labels", "expected_loss", "merge_components", "nonempty_prior", "partition",
           "partition_distance"]
