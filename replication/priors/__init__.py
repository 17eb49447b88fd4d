"""Priors for the true selection frequency s, fitted to k-of-n annotation counts.

- :class:`BetaMixturePrior`: a mixture of betas by EM on the beta-binomial likelihood (K by BIC).
- :class:`NPMLEPrior`: the Kiefer-Wolfowitz nonparametric MLE (no shape assumed).

Both share :class:`SelectionFrequencyPrior`'s read-outs: ``pdf``, ``cell_mass``,
``marginal_k``, ``posterior``, ``posterior_mean``, ``sample``, ``goodness_of_fit``.
"""
from replication.priors._base import GoodnessOfFit, SelectionFrequencyPrior
from replication.priors.beta_mixture import BetaMixturePrior
from replication.priors.npmle import NPMLEPrior

__all__ = ["BetaMixturePrior", "GoodnessOfFit", "NPMLEPrior", "SelectionFrequencyPrior"]
