"""The built-in quickstart study (`scalinglab quickstart`, `scalinglab study` with no SPEC).

examples/quickstart.toml is a byte-for-byte copy (a test checks it), so users can copy
and edit it; the text lives here so an installed package carries it.
"""

QUICKSTART_TOML = """\
# The quickstart scaling study: a WSD ladder of small GPTs (one stable-LR trunk per size,
# cooldown branches at four token budgets) and a small LSTM ladder beside it, on the bytes
# of Python's standard library; Chinchilla's law fitted on every branch end with bootstrap
# intervals; a GPT run at >= 10x the largest fitted run's compute, predicted before it is
# trained; and a plan for 10x-1000x the compute. About 8 minutes on 2 cores.
#
#   scalinglab quickstart --out runs/quickstart          # this file, built in
#   scalinglab study examples/quickstart.toml --out runs/mine --minutes 20
format_version = 1
name = "quickstart"
minutes = 10                    # the wall time the sizes below were chosen for (--minutes scales them)
workers = 2                     # trainer processes at a time; threads per run = cores / workers

[data]
sources = ["stdlib"]            # Python's standard library source, prepared once into the cache
tokenizer = "byte"
stdlib_tests = true             # with its tests: 31M tokens, so no run here repeats data

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
max_layers = 2                  # another shape family, a bump in the fits
head_size = 8
rnn_layers = 1
width_multiple = 8

[hparams]
lr = 5e-3                       # at width 64; lr ∝ 1/sqrt(width)
ref_width = 64
lr_power = 0.5
warmup_frac = 0.05
[hparams.lstm]
lr = 1e-2

[sweeps.gpt]                    # a WSD ladder: per size one constant-LR trunk, and a branch
kind = "wsd"                    # that cools down at each ratio D = r · N (docs/study.md)
params = [1.3e4, 2.4e4, 3.8e4, 5.5e4, 7.5e4]   # five sizes (widths 16-48): more sizes beat more branches
tokens_per_param = [6, 12, 20, 28]             # the largest run: C ~ 9.5e11, a tenth of the backtest's
cooldown_frac = 0.2

[sweeps.lstm]                   # the LSTM beside it (no backtest): a smaller ladder
kind = "wsd"
params = [1.5e4, 3e4, 6e4]
tokens_per_param = [10, 20, 40]
cooldown_frac = 0.2

[backtest]
arch = "gpt"
budget = 1e13                   # >= 10x the largest GPT run of the ladder: an extrapolation
predictor = "chinchilla"        # L(N, D) at the run's N, D (a WSD run, as the branches are)

[seed_noise]
arch = "gpt"
params = 1.3e4                  # the smallest size, trunk and branches, repeated with these seeds
seeds = [1, 2]                  # one run is one draw: the interval adds their spread

[plan]
factors = [10, 100, 1000]       # multiples of the largest GPT run's compute

[fit]
bootstrap = 1000                 # resamples (the default everywhere: scalinglab fit, Python)
seed = 0
ci_level = 0.95
curvature = "per-budget"         # IsoFLOP sweeps only: a parabola per budget (Hoffmann et al.)
"""
