"""The built-in quickstart study (`scalinglab quickstart`, `scalinglab study` with no SPEC).

examples/quickstart.toml is a byte-for-byte copy (a test checks it), so users can copy
and edit it; the text lives here so an installed package carries it.
"""

QUICKSTART_TOML = """\
# The quickstart scaling study: GPT and LSTM IsoFLOP sweeps on the bytes of Python's
# standard library (the GPT's trained as one trunk per size with a cooldown branch per
# budget), fits with bootstrap intervals, a backtest 14x beyond the largest fitted run
# predicted before it is trained, and a plan for 10x-1000x the compute.
#
#   scalinglab quickstart --out runs/quickstart          # this file, built in
#   scalinglab study examples/quickstart.toml --out runs/mine --minutes 20
format_version = 1
name = "quickstart"
minutes = 10                    # the wall time the budgets below were sized for (--minutes scales them)
workers = 2                     # trainer processes at a time; threads per run = cores / workers

[data]
sources = ["stdlib"]            # Python's standard library source, prepared once into the cache
tokenizer = "byte"
stdlib_tests = true             # with its tests: 31M tokens, so no run near the optimum repeats data

[model]
block_size = 128

[train]
batch_size = 8                  # small batches: measured here, batch 32 lost ~0.3 nats at equal compute
dtype = "float32"               # one arithmetic for every size (auto would go bf16 from width 64)
log_every = 25
ckpt_every = 2000               # an interrupted run loses at most 2000 steps

[shape]
aspect = 1
min_layers = 2                  # every GPT has two layers: a 1-layer model among them is
max_layers = 2                  # another shape family, a bump in the IsoFLOP profile
head_size = 8
rnn_layers = 1
width_multiple = 8

[hparams]
lr = 5e-3                       # at width 64; lr ∝ 1/sqrt(width)
ref_width = 64
lr_power = 0.5
warmup_frac = 0.05
[hparams.gpt]                   # AdamW's weight decay per size: its timescale 1/(lr·wd) is 80
decay_tokens_per_param = 80     # tokens per parameter at every size, not a fixed number of steps
[hparams.lstm]                  # the RNN recipe (docs/training.md): clipped SGD, one lr at these widths
optimizer = "sgd"               # measured here at widths 32 and 64: 4-6% lower loss than AdamW's best
lr = 20                         # the SGD default: of 5, 10, 20, 40 the best on its runs
lr_power = 0
grad_clip = 0.25

[sweeps.gpt]                    # IsoFLOP: 3 sizes per budget, D = C / (6N), on shared trunks
budgets = [7.5e10, 2.3e11, 7e11]
sizes = 3
tokens_per_param = 65           # the centre; measured here, the optima sat at ~50-90
spread = 3.5                    # the largest size of a budget is 3.5x the smallest
trunks = true                   # per size one constant-lr trunk, a WSD cooldown branch per budget
cooldown_frac = 0.2

[sweeps.lstm]                   # at these budgets the LSTM's optima sat at ~45-60 tokens/param
budgets = [1e11, 3e11]
sizes = 4
tokens_per_param = 40
spread = 4

[backtest]
arch = "gpt"
budget = 1e13                   # 14x the largest GPT budget; the GPT runs cost 0.28x it
predictor = "frontier"          # L(C) through the IsoFLOP optima; "chinchilla": L(N, D) at the run's N, D

[seed_noise]
arch = "gpt"
budget = 7.5e10                 # the sweep point nearest the centre, repeated with these seeds
seeds = [1, 2]                  # one run is one draw: measured here, ~1% apart

[tasks]                         # built-in tasks scored on every run; the backtest's accuracy predicted
names = ["next-line", "recall"] # the two the sweep alone says are predictable (docs/tasks.md)

[plan]
factors = [10, 100, 1000]       # multiples of the largest GPT budget

[fit]
bootstrap = 1000                 # resamples (the default everywhere: scalinglab fit, Python)
seed = 0
ci_level = 0.95
curvature = "per-budget"         # a parabola per budget (Hoffmann et al.); or "shared"
n_kind = "params_nonembed"       # N without embeddings (Kaplan's), C = 6·N·D with it: measured
                                 # here, within 2% of the backtest where all parameters miss by 3%
"""
