"""Priors for the true selection frequency s, fitted to k-of-n annotation counts.

- :class:`BetaMixturePrior` (``betabinomial``): a mixture of betas by EM on the beta-binomial likelihood (K by BIC).
- :class:`NPMLEPrior` (``npmle``): the Kiefer-Wolfowitz nonparametric MLE (no shape assumed).

Both share :class:`SelectionFrequencyPrior`'s read-outs: ``pdf``, ``cell_mass``,
``marginal_k``, ``posterior``, ``posterior_mean``, ``sample``, ``fit_batch``,
``expected_counts``, ``goodness_of_fit``. :data:`PRIORS` holds the registered
families (see :mod:`replication.priors.registry`); each module below registers
its family on import.
"""
from replication.priors._base import GoodnessOfFit, PriorBatch, SelectionFrequencyPrior
from replication.priors.registry import PRIORS, PriorFamily, prior_family, register_prior
from replication.priors.beta_mixture import BetaMixturePrior  # noqa: I001  (registration order = method order)
from replication.priors.npmle import NPMLEPrior

__all__ = ["BetaMixturePrior", "GoodnessOfFit", "NPMLEPrior", "PRIORS", "PriorBatch", "PriorFamily",
           "SelectionFrequencyPrior", "prior_family", "register_prior"]
