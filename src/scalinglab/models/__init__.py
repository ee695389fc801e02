"""Models (GPT, the RNN family), presets by name, and the one parameter/FLOP counter.

Importing this package does not import torch: `scalinglab.models.counting`
is used by sweeps and planning, which need no model.
"""
