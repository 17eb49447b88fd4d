"""replication-bias: how much of a model's accuracy drop on a replicated test set is real.

The library API (numpy / pandas in and out; no torch needed):

- Selection-frequency bias: :class:`SelectionBiasEstimator` -> :class:`BiasResults`
  (methods ``naive``, ``jackknife``, ``betabinomial``, ``npmle``), the priors
  :class:`BetaMixturePrior` and :class:`NPMLEPrior`, :class:`Deconvolution`
  (f(s) curves and importance weights), :func:`run_placebo`.
- Studies: :class:`StudyData` / :class:`LevelTable`; the simulator
  :class:`SimulationConfig` + :func:`simulate`; Recht et al.'s samplers in
  :mod:`replication.sampling`.
- Fits across models: :class:`LineFit`, :class:`ScalingFit` and friends in
  :mod:`replication.fits`.
- Contract tables: :func:`load_annotations`, :func:`load_correctness`,
  :func:`load_accuracy_table`.

Model evaluation lives in the sibling package ``evaluators`` (needs torch).
"""
import importlib

#: public name -> module that defines it; imported on first use (PEP 562), so
#: ``replication --help`` and light commands do not pay for scipy and pandas
_EXPORTS = {
    "Deconvolution": "replication.deconvolution",
    "FitError": "replication.errors",
    "InputError": "replication.errors",
    "METHODS": "replication.estimators",
    "BiasResults": "replication.estimators.results",
    "SelectionBiasEstimator": "replication.estimators.results",
    "LineFit": "replication.fits",
    "ScalingFit": "replication.fits",
    "load_accuracy_table": "replication.io",
    "load_annotations": "replication.io",
    "load_correctness": "replication.io",
    "run_placebo": "replication.placebo",
    "BetaMixturePrior": "replication.priors",
    "NPMLEPrior": "replication.priors",
    "SimulationConfig": "replication.simulate",
    "simulate": "replication.simulate",
    "LevelTable": "replication.study",
    "StudyData": "replication.study",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'replication' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__version__ = "0.1.0"

__all__ = sorted(_EXPORTS)
