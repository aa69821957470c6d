"""Prior settings for the Bayesian Gaussian mixture.

All scales are in units of each feature's standard deviation: the model is fitted on
standardised data (each column centred on its mean and divided by its standard deviation),
so the same defaults work whatever the units of the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["Priors"]


@dataclass(frozen=True)
class Priors:
    r"""Priors of the Bayesian Gaussian mixture, on the standardised scale.

    The model is

    .. math::

        w &\sim \mathrm{Dirichlet}(\alpha, \dots, \alpha) \\
        \mu_k &\sim \mathcal{N}(0, s_\mu^2 I) \\
        \sigma_{kd} &\sim \mathrm{InverseGamma}(a, b) \\
        \Omega_k &\sim \mathrm{LKJ}(\eta) \\
        \Sigma_k &= \mathrm{diag}(\sigma_k)\, \Omega_k\, \mathrm{diag}(\sigma_k) \\
        x_n &\sim \sum_k w_k\, \mathcal{N}(\mu_k, \Sigma_k)
        \quad \text{or, with Student-t components,} \quad
        \sum_k w_k\, t_{\nu_k}(\mu_k, \Sigma_k), \quad
        \nu_k \sim \mathrm{Gamma}(a_\nu, b_\nu)

    on data standardised column by column, so one unit is one standard deviation of that
    feature in the data.

    Parameters
    ----------
    weight_concentration : float, default 1.0
        Dirichlet concentration :math:`\alpha` of the weights. 1 is uniform on the simplex.
        Values below 1 favour empty components (a sparse, "overfitted" mixture) and make the
        MAP ill-posed (the density is unbounded as a weight goes to 0); use them with NUTS or
        VI only.
    mean_scale : float, default 2.0
        Prior standard deviation :math:`s_\mu` of each component mean around the data mean,
        in feature standard deviations.
    lkj_eta : float, default 2.0
        LKJ shape :math:`\eta` of each component's correlation matrix. 1 is uniform over
        correlation matrices; larger values shrink towards independence.
    scale_shape : float, default 2.0
        Shape :math:`a` of the inverse-gamma prior on each component standard deviation.
    scale_scale : float, default 0.2
        Scale :math:`b` of that inverse-gamma prior, in feature standard deviations. Its
        density vanishes faster than any power of :math:`\sigma` as :math:`\sigma \to 0`, which
        is what removes the maximum-likelihood singularity (a component collapsing onto one
        point, or onto a few duplicated points): the log posterior falls to :math:`-\infty`
        where the log-likelihood rises to :math:`+\infty`. The LKJ prior alone does not.
    dof_shape : float, default 2.0
        Shape of the Gamma prior on each Student-t component's degrees of freedom
        :math:`\nu_k` (models built with ``component="student_t"``, see
        :func:`bayesgmm.model.build_model`); unused for Gaussian components.
    dof_rate : float, default 0.1
        Rate of that Gamma prior. Gamma(2, 0.1) (Juárez and Steel 2010) has mean 20 and
        mode 10, a density that vanishes at :math:`\nu = 0` (1.8% of its mass lies below
        :math:`\nu = 2`, where the variance is infinite: a component can take outliers
        with very heavy tails when the data ask for it), and a tail heavy enough that the
        data can move :math:`\nu` to large values, where the component is Gaussian.

    Examples
    --------
    >>> from bayesgmm import Priors
    >>> Priors()  # doctest: +NORMALIZE_WHITESPACE
    Priors(weight_concentration=1.0, mean_scale=2.0, lkj_eta=2.0, scale_shape=2.0,
           scale_scale=0.2, dof_shape=2.0, dof_rate=0.1)
    >>> Priors(lkj_eta=4.0).lkj_eta
    4.0
    >>> Priors().replace(mean_scale=3.0).mean_scale
    3.0
    """

    weight_concentration: float = 1.0
    mean_scale: float = 2.0
    lkj_eta: float = 2.0
    scale_shape: float = 2.0
    scale_scale: float = 0.2
    dof_shape: float = 2.0
    dof_rate: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"Priors.{f.name} must be a positive number, got {type(value).__name__} "
                    f"{value!r}."
                )
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"Priors.{f.name} must be a positive finite number, got {value!r}."
                )
            object.__setattr__(self, f.name, float(value))

    def replace(self, **changes: float) -> Priors:
        """Return a copy with some settings changed (validated like the original).

        Parameters
        ----------
        **changes : float
            New values, by field name.

        Returns
        -------
        Priors
        """
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(
                f"Unknown prior setting(s) {unknown}; valid settings are {sorted(names)}."
            )
        values = {name: getattr(self, name) for name in names}
        values.update(changes)
        return Priors(**values)

    @classmethod
    def coerce(cls, priors: Priors | dict | None) -> Priors:
        """Turn ``None``, a dict of overrides, or a :class:`Priors` into a :class:`Priors`.

        Parameters
        ----------
        priors : Priors, dict or None
            ``None`` gives the defaults; a dict overrides some of them.

        Returns
        -------
        Priors
        """
        if priors is None:
            return cls()
        if isinstance(priors, cls):
            return priors
        if isinstance(priors, dict):
            return cls().replace(**priors)
        raise TypeError(
            f"priors must be a bayesgmm.Priors, a dict of overrides or None, "
            f"got {type(priors).__name__}."
        )
