"""Planning from fitted laws: the compute for a target loss, a fixed model size, and the
analysis that turns a study's fits into a plan and a prediction (`plan.analysis`).

`optimal_allocation` is the law's own algebra (scalinglab.laws.optimal), offered here too.
"""

from scalinglab.laws.optimal import optimal_allocation
from scalinglab.plan.allocate import fixed_params, target_loss, unique_tokens_allocation
from scalinglab.plan.schedules import rank_schedules

__all__ = [
    "fixed_params",
    "optimal_allocation",
    "rank_schedules",
    "target_loss",
    "unique_tokens_allocation",
]
