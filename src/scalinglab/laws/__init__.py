"""Scaling-law fitting: law forms, the fitting engine, bootstrap, IsoFLOP, envelope, backtest.

No torch here: the input is a runs table (CSV or arrays).
"""

from scalinglab.laws.estimator import LAWS, ScalingLaw, load_fit
from scalinglab.laws.table import RunsTable, read_csv

__all__ = ["LAWS", "RunsTable", "ScalingLaw", "load_fit", "read_csv"]
