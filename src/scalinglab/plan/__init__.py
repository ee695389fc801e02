"""Compute-optimal planning from a fitted law (a ScalingLaw or a fit.json)."""

from scalinglab.plan.allocate import fixed_params, optimal_allocation, target_loss

__all__ = ["fixed_params", "optimal_allocation", "target_loss"]
