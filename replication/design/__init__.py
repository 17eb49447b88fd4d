"""Planning a replication study: simulate candidate designs from a pilot or a
preset and report, per method, the bias, RMSE, interval width and coverage of
the mean adjusted gap, and what each design costs.

>>> scenario = Scenario.from_preset("engstrom2020")                          # doctest: +SKIP
>>> designs = design_grid(annotators=(5, 10), reference_images=(10_000,),
...                       replication_images=(5_000,), pool=("12x",))         # doctest: +SKIP
>>> outcomes = run_designs(designs, scenario, ("naive", "betabinomial"), n_studies=16,
...                        n_bootstrap=10, seed=0, jobs=2)                     # doctest: +SKIP
>>> res = DesignResults(outcomes, Criteria(0.03, 0.01), 1.0, scenario.describe())  # doctest: +SKIP
>>> print(res.summary()); res.recommended(); res.to_dict()                    # doctest: +SKIP

Modules: :mod:`~replication.design.scenario` (priors, curves, shift: measured
or assumed), :mod:`~replication.design.grid` (designs and their cost),
:mod:`~replication.design.simulation` (simulating and scoring one design),
:mod:`~replication.design.runner` (local processes or Ray),
:mod:`~replication.design.results` (JSON, table, recommendation),
:mod:`~replication.design.figure` (precision against cost).
"""
from replication.design.grid import Design, design_grid
from replication.design.results import Criteria, DesignResults
from replication.design.runner import run_designs
from replication.design.scenario import Scenario
from replication.design.simulation import DesignOutcome, MethodOutcome, evaluate_design

__all__ = ["Criteria", "Design", "DesignOutcome", "DesignResults", "MethodOutcome", "Scenario", "design_grid",
           "evaluate_design", "run_designs"]
