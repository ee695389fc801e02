"""scalinglab: train language models of many sizes, fit their scaling laws, plan the next run.

The Python API (docs/api.md), the same jobs as the command line:

    from scalinglab import ScalingLaw, plan_run
    law = ScalingLaw("chinchilla", drop_highest=5).fit("epoch.csv")  # or a DataFrame
    law.plot(); law.summary(); plan_run(law, flops=1e21)

Each name is imported when first used, so `import scalinglab` loads nothing heavy
(the fitter never needs torch): `ScalingLaw`, `load_fit` and `read_table` fit laws
to any table; `runs_table` reads a sweep's run folders; `plan_run` plans a budget;
`prepare` builds token shards; `train_run` trains one run; `run_sweep` and `run_study`
run many. (`plan_run` and `train_run` are not `plan` and `train`: those are
subpackages, and a subpackage, once imported, shadows a function of its name.)
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ScalingLaw": "scalinglab.laws.estimator",
    "load_fit": "scalinglab.laws.estimator",
    "read_table": "scalinglab.laws.table",
    "runs_table": "scalinglab.sweep.table",
    "plan_run": "scalinglab.api",
    "prepare": "scalinglab.data.writer",
    "train_run": "scalinglab.api",
    "run_sweep": "scalinglab.api",
    "run_study": "scalinglab.api",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
