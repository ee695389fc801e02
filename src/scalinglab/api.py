"""The Python API's functions over the library: one call per job, as the CLI has one command.

`import scalinglab` exposes them (lazily: nothing here is imported until used, and
the fitter never imports torch). Each takes plain values — paths, numbers, the
settings of the typed configs as keywords — and returns plain values: dicts,
lists of dicts, a fitted ScalingLaw. docs/api.md shows them in use.
"""

import dataclasses
import os
from pathlib import Path

from scalinglab.config import ModelConfig, RunConfig, TrainConfig, load_toml, run_table
from scalinglab.errors import ConfigError
from scalinglab.runfolder import folder_arg


def plan_run(law, *, flops=None, target_loss=None, params=None, unique_tokens=None):
    """The compute-optimal run for a budget, the compute to reach a loss, or a fixed size.

    The Python form of `scalinglab plan` (not called `plan`: that is the name of the
    `scalinglab.plan` package, which would shadow it once imported).

    Args:
        law: a fitted ScalingLaw, a fit.json path (or its JSON text), or a
            published law's name ("hoffmann2022", "besiroglu2024", "kaplan2020").
        flops: a FLOP budget or a list of them: N_opt, D_opt, tokens per
            parameter and loss at each (with `params`: exactly one budget); a
            power-c law gives the loss alone (it has no N or D).
        target_loss: the loss to reach: the compute (and allocation) the
            compute-optimal path needs. Not with `flops`.
        params: a fixed model size N, trained on the one budget `flops`
            (D = C/(6N)): its loss against the optimum at that budget.
        unique_tokens: the unique tokens U there are (a data-constrained law, with
            `flops`): N, D and epochs D/U at each budget (`plan --unique-tokens`).

    Returns:
        A dict (one budget, a target loss, a fixed size) or a list of dicts (a
        list of budgets); every quantity has a `*_ci` interval when the law has
        bootstrap draws.

    Raises:
        ConfigError: the arguments do not name exactly one question.
    """
    from scalinglab.laws import ScalingLaw, load_fit
    from scalinglab.laws.published import PUBLISHED
    from scalinglab.plan import fixed_params, optimal_allocation
    from scalinglab.plan import target_loss as to_loss

    if isinstance(law, str) and law in PUBLISHED:
        law = ScalingLaw.from_published(law)
    elif isinstance(law, (str, Path)):
        if str(law).lstrip().startswith("{"):  # a fit.json's text: Path() of it was OSError
            pass
        elif not Path(law).exists() and not Path(law).suffix and "/" not in str(law):
            raise ConfigError(
                f"plan_run({str(law)!r}): neither a fit.json nor a published law "
                f"({', '.join(PUBLISHED)})"
            )
        law = load_fit(law)
    elif not isinstance(law, ScalingLaw):
        raise ConfigError(
            f"plan_run: law is a ScalingLaw, a fit.json path or a published law's name, "
            f"not {type(law).__name__}"
        )
    if unique_tokens is not None:
        if flops is None or params is not None or target_loss is not None:
            raise ConfigError("plan_run(unique_tokens=U) goes with flops=C (or a list) only")
        import numpy as np

        from scalinglab.plan.allocate import unique_tokens_allocation

        rows = unique_tokens_allocation(law, flops, unique_tokens)
        out = rows[0] if np.ndim(flops) == 0 else rows
    elif law.law == "data-constrained":
        # as `scalinglab plan` says: without U the law has no allocation, and flops alone
        # was told to 'use chinchilla, isoflop or envelope', params=N that the law
        # 'predicts from N, D and U' (of a law whose fixed-size plan it lists)
        raise ConfigError(
            "plan_run: a data-constrained fit plans with flops=C (or a list) and "
            "unique_tokens=U, the unique tokens there are"
        )
    elif params is not None:
        if flops is None or isinstance(flops, (list, tuple)):
            raise ConfigError("plan_run(params=N) needs exactly one budget: flops=C")
        out = fixed_params(law, params, flops)
    elif target_loss is not None:
        if flops is not None:
            raise ConfigError("plan_run: give flops or target_loss, not both")
        out = to_loss(law, target_loss)
    elif flops is None:
        raise ConfigError("plan_run: give flops=C (or a list), target_loss=L, or params=N, flops=C")
    else:
        out = optimal_allocation(law, list(flops) if isinstance(flops, tuple) else flops)
    _checked_plan(law, out if isinstance(out, list) else [out])
    return out


def _checked_plan(law, rows) -> None:
    """What `scalinglab plan` says of a plan, said by plan_run too: below one parameter or
    token it is refused (ConfigError), decades outside the fitted compute it is answered
    with an ExtrapolationWarning naming how far."""
    import warnings

    from scalinglab.errors import ExtrapolationWarning
    from scalinglab.plan.allocate import check_sizes, extrapolations

    check_sizes(law, rows)
    for note in extrapolations(law, rows):
        warnings.warn(f"plan_run: extrapolating: {note}", ExtrapolationWarning, stacklevel=3)


def run_config(config=None, **settings) -> RunConfig:
    """A RunConfig from a TOML file or RunConfig, a `preset`, and field keywords over them.

    Args:
        config: a run config TOML path (`[model]`, `[train]`), a RunConfig, or None.
        **settings: fields of ModelConfig and TrainConfig by name (`n_layer=4`,
            `steps=200`, `data="shards"`, `preset="gpt-tiny"`); they win over `config`
            (a `preset` over a RunConfig: its fields replace the RunConfig's).

    Raises:
        ConfigError: an unknown field, or an invalid value (named).
    """
    from scalinglab.models.registry import preset_fields

    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - model_names - train_names)
    if unknown:
        raise ConfigError(f"unknown run setting(s) {', '.join(unknown)}")
    # data=Path("shards") (what prepare's out= takes) was "data must be str, got PosixPath"
    settings = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in settings.items()}
    if isinstance(config, RunConfig):
        base = config.to_dict()
    elif isinstance(config, str | os.PathLike):
        base = load_toml(config)
    elif config is not None:
        raise ConfigError(
            f"run_config: config is a TOML path or a RunConfig, not {type(config).__name__}"
        )
    else:
        base = {}
    where = str(config or "run")
    model = run_table(base, "model", where)
    given = {k: v for k, v in settings.items() if k in model_names}
    if isinstance(config, RunConfig) and given.get("preset"):
        # a RunConfig holds every field, its old preset's shape too: the new preset's win
        model = model | preset_fields(given["preset"])
    model = {**model, **given}
    if model.get("preset"):
        given = "run_config(preset=...)" if "preset" in settings else f"{where} [model]"
        model = preset_fields(model["preset"], given) | model
    train = run_table(base, "train", where)
    train = {**train, **{k: v for k, v in settings.items() if k in train_names}}
    return RunConfig.from_dict({**base, "model": model, "train": train}, where)


def train_run(out, config=None, **settings) -> dict:
    """Train (or, with `resume="auto"`, resume) one run into the run folder `out`.

    (Not called `train`: that is the name of the `scalinglab.train` package, which
    would shadow it once imported.)

    Args:
        out: the run folder to write (config.toml, metrics.jsonl, checkpoints, result.json).
        config: a run config TOML path or a RunConfig (optional).
        **settings: ModelConfig and TrainConfig fields by name, over `config`:
            `data` (a shards folder, required), one budget (`steps`, `tokens`,
            `flops` or `time`), `model`, `n_layer`, `lr`, ... (docs/training.md).

    Returns:
        result.json's contents: status (completed, diverged, preempted, failed),
        losses, N, D, C, throughput.
    """
    from scalinglab.train import train as train_run

    cfg = run_config(config, **settings)
    if not cfg.train.data:
        raise ConfigError("train: no shards folder: give data=SHARDS")
    cfg.train.budget  # noqa: B018 -- a missing budget is a user error, before any work
    return train_run(cfg, out)


def _check_executor(settings: dict) -> None:
    """An unknown ExecutorConfig keyword is named before anything is read or written."""
    import dataclasses

    from scalinglab.sweep.executors import ExecutorConfig

    known = {f.name for f in dataclasses.fields(ExecutorConfig) if f.init}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(
            f"unknown executor setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def _executor(settings: dict):
    from scalinglab.sweep.executors import ExecutorConfig

    _check_executor(settings)
    return ExecutorConfig(**settings)


def run_sweep(spec, out, *, trainer_cmd=None, **executor) -> list[dict]:
    """Run (or resume) a sweep: every planned run in its folder `out/runs/NAME`.

    Args:
        spec: a sweep spec TOML path, or a SweepSpec (docs/sweeps.md).
        out: the sweep folder; rerunning with the same folder skips finished runs
            and resumes the others.
        trainer_cmd: run this program for each run instead of scalinglab's trainer:
            a command line with {placeholders} (docs/interfaces.md); None: the
            spec's `trainer_cmd`, else scalinglab's trainer.
        **executor: ExecutorConfig fields: `executor` ("local", "ray",
            "submitit"), `workers`, `threads`, `retries`, ...

    Returns:
        One outcome per run: name, status, attempts, returncode, skipped.
    """
    from scalinglab.sweep import driver
    from scalinglab.sweep.executors import make_executor
    from scalinglab.sweep.spec import SweepSpec, check_program, check_trainer_cmd, load_spec

    _check_executor(executor)
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    where = "run_sweep(trainer_cmd=...)"
    if trainer_cmd is not None:
        spec.trainer_cmd = check_trainer_cmd(trainer_cmd, where, spec.design)
    check_program(
        spec.trainer_cmd, where if trainer_cmd else f"{spec.source or 'spec'}: trainer_cmd"
    )
    cfg = _executor(executor)
    out = folder_arg(out, file_ok=True)  # a file: driver.check_out names it a sweep's way
    ex = make_executor(cfg, out)
    return driver.run_sweep(
        spec, out, ex, cfg.threads_per_run, cfg.retries, command=spec.trainer_cmd
    )


def run_study(spec, out, *, cache=None, trainer_cmd=None, **executor) -> dict:
    """Run (or resume) a whole scaling study: data, sweeps, fits, prediction, backtest, report.

    Args:
        spec: a study spec TOML path, a StudySpec, or "quickstart" for the built-in one.
        out: the study folder (report.html and summary.json land there).
        cache: where prepared corpora are kept (default $SCALINGLAB_CACHE or
            ~/.cache/scalinglab, as the CLI).
        trainer_cmd: run this program for every run of the study instead of
            scalinglab's trainer: a command line with {placeholders}
            (docs/interfaces.md). None: the spec's `trainer_cmd`, else scalinglab's trainer.
        **executor: ExecutorConfig fields (`executor`, `workers`, `threads`, ...);
            `workers` defaults to the spec's.

    Returns:
        summary.json's contents.
    """
    import tomllib

    from scalinglab.study.builtin import QUICKSTART_TOML
    from scalinglab.study.run import run_study as run
    from scalinglab.study.spec import StudySpec, load_study, parse_study
    from scalinglab.sweep.spec import check_program

    _check_executor(executor)
    if isinstance(spec, StudySpec):
        study, source = spec, "the study spec"
    elif spec == "quickstart":
        study = parse_study(tomllib.loads(QUICKSTART_TOML), "built-in quickstart")
        source = "built-in quickstart"
    else:
        study, source = load_study(spec), spec
    where = "run_study(trainer_cmd=...)"
    if trainer_cmd is not None:
        study = study.with_trainer_cmd(trainer_cmd, where)
    check_program(study.trainer_cmd, where if trainer_cmd else f"{source}: trainer_cmd")
    if cache is None:
        env = os.environ.get("SCALINGLAB_CACHE")
        cache = Path(env) if env else Path.home() / ".cache" / "scalinglab"
    cfg = _executor({"workers": study.workers, **executor})
    return run(study, folder_arg(out), folder_arg(cache, "--cache"), cfg)
