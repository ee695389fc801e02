"""scalinglab: train language models of many sizes, fit their scaling laws, plan the next run."""

__version__ = "0.1.0"
