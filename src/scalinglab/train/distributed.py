"""One run across processes: torchrun / DistributedDataParallel, behind a few small hooks.

`torchrun --standalone --nproc-per-node=N -m scalinglab train ...` starts N
copies of the trainer; torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, ...) makes `setup` join them in one process group (NCCL on
GPUs, gloo on CPUs). Without that environment everything here is a no-op and
the trainer runs as a single process.

The rules the loop keeps through these hooks:

- **The global batch is the config's.** `--batch-size` counts sequences per
  micro-batch across all ranks; each rank takes its own `batch_size / N` rows
  of the very batch a single process would draw (`RankSlice`), so tokens per
  step, budgets, schedules, run_id and checkpoints (but for each rank's generator,
  below) do not depend on N, and a 2-process run without dropout follows the
  1-process run to float rounding. DDP averages the gradients, which makes the
  update that of the global batch.
- **Each rank draws its own dropout masks**, as the rows of one large batch do:
  the model is initialised from the seed on every rank, then a rank r > 0 reseeds
  (`rank_seed`). Checkpoints keep every rank's generator (`gather`), so a resume
  on as many ranks continues each rank's masks; with dropout a 2-process run is
  not the 1-process run (other masks), only alike in distribution.
- **Only rank 0 writes** (config.toml, tokenizer.json, metrics, TensorBoard,
  checkpoints, result.json). Every rank reads the same newest checkpoint on
  resume; a recurrent model's carried state is gathered into the global batch
  for the checkpoint and sliced back on load.
- **Rank 0's work is agreed.** Where rank 0 alone may fail (the run's lock, the
  writes of config, metrics, checkpoints and result), the ranks then agree on the
  outcome (`together`: one tiny all-reduce): if rank 0 failed, every rank stops,
  rank 0 with its own error and the others with one line naming it, instead of
  going on to a collective rank 0 never joins (gloo's "Connection closed by peer").
- **Decisions are agreed.** The guard's (finite?, loss, gradient norm) are
  all-reduced before the update, so no rank steps alone; after each step the
  ranks agree on a SIGTERM stop and on the training-time clock (the --time
  budget and its schedule), so all stop at the same step.
- **Every rank leaves the group cleanly** (`close`): after a normal end
  (completed, diverged, budget spent, preempted) the ranks meet at a barrier,
  so none closes its sockets while a peer still talks to it; then the DDP
  wrapper is dropped and the group destroyed, which joins gloo's threads while
  the interpreter is alive. After an error there is no barrier (a peer may be
  gone), only the teardown.
"""

import contextlib
import datetime
import inspect
import logging
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from scalinglab.errors import ConfigError, ScalingLabError

if dist.is_available():
    # Imported here, before any process group exists, on purpose. The first
    # DistributedDataParallel imports this module lazily, and its functions take
    # `group=group.WORLD` as default arguments, evaluated at import: imported while
    # a group is live, they keep it referenced for the life of the process, so
    # destroy_process_group() cannot free it and gloo's worker threads outlive it.
    # Still running at interpreter exit, those threads abort the process
    # ("terminate called without an active exception"), and a peer that exits
    # first makes them log "Connection reset by peer": torchrun then counts a
    # finished run as failed.
    import torch.distributed.nn.functional

log = logging.getLogger(__name__)


class Distributed:
    """Rank, world size and the collective operations the trainer needs."""

    def __init__(self, rank: int = 0, world_size: int = 1, owns_group: bool = False):
        self.rank = rank
        self.world_size = world_size
        self.is_main = rank == 0
        self.enabled = world_size > 1
        self.owns_group = owns_group
        self.ddp = None  # the DistributedDataParallel module, once wrapped

    # -- model and data ------------------------------------------------------

    def wrap(self, model: torch.nn.Module, device: str) -> torch.nn.Module:
        """The module the loop calls forward on: DDP around `model`, or `model` itself."""
        if not self.enabled:
            return model
        ids = [torch.device(device).index] if device.startswith("cuda") else None
        # Our buffers (rotary tables) are constants: nothing to broadcast each forward
        # (the flag was renamed in recent torch).
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        quiet = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        self.ddp = _DDP(model, device_ids=ids, **{quiet: False})
        return self.ddp

    def no_sync(self, skip: bool):
        """Within a gradient-accumulation step, all-reduce only on the last micro-batch."""
        if self.ddp is None or not skip:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def shard_loader(self, loader, batch_size: int):
        """This rank's rows of each global batch (the loader itself when single-process)."""
        if not self.enabled:
            return loader
        if batch_size % self.world_size:
            raise ConfigError(
                f"--batch-size {batch_size} is the global micro-batch and must be divisible "
                f"by the number of processes ({self.world_size})"
            )
        return RankSlice(loader, self.rank, self.world_size)

    # -- agreement -----------------------------------------------------------

    def agree_step(self, stats: torch.Tensor) -> torch.Tensor:
        """[finite, loss, grad_norm] of this rank -> [all finite, mean loss, mean norm]."""
        if not self.enabled:
            return stats
        t = stats.detach().clone().float()
        t[0] = 1.0 - t[0]  # count the ranks that are not finite
        t = _all_reduce(t, dist.ReduceOp.SUM)
        return torch.stack([(t[0] == 0).float(), t[1] / self.world_size, t[2] / self.world_size])

    def agree_after_step(self, counters, stop: bool) -> bool:
        """Stop if any rank got SIGTERM; share the slowest rank's training clock."""
        if not self.enabled:
            return stop
        t = torch.tensor([float(stop), counters.train_seconds], dtype=torch.float64)
        t = _all_reduce(t, dist.ReduceOp.MAX)
        counters.train_seconds = float(t[1])
        return bool(t[0])

    @contextlib.contextmanager
    def together(self):
        """A block that may fail on some ranks only (rank 0's lock and writes), left by
        every rank alike: a rank that failed raises its own error, the others PeerFailed
        naming the first failed rank's cause. One all-reduce of one number when none failed;
        the block itself must hold no collective."""
        if not self.enabled:
            yield
            return
        try:
            yield
        except Exception as exc:
            with contextlib.suppress(RuntimeError):  # the peers are gone: our error stands
                self._share_failure(exc)
            raise
        self._share_failure(None)

    def _share_failure(self, exc: Exception | None) -> None:
        first = torch.tensor([self.world_size if exc is None else self.rank])
        first = int(_all_reduce(first, dist.ReduceOp.MIN)[0])  # the lowest rank that failed
        if first == self.world_size:
            return
        said = [_one_line(exc), getattr(exc, "exit_code", 1)] if self.rank == first else [None, 1]
        dist.broadcast_object_list(said, src=first)
        if exc is None:
            raise PeerFailed(f"rank {self.rank} stops: rank {first} failed: {said[0]}", said[1])

    def check_same(self, value: int, what: str) -> None:
        """Raise unless every rank holds the same integer `value` (e.g. the resumed step)."""
        if not self.enabled:
            return
        t = _all_reduce(torch.tensor([value, -value], dtype=torch.float64), dist.ReduceOp.MAX)
        if t[0] != -t[1]:
            raise ConfigError(f"processes disagree on the {what}: {-t[1]:.0f} to {t[0]:.0f}")

    # -- the carried state of recurrent models -------------------------------

    def gather_rows(self, state):
        """A recurrent state (n_layer, local_B, H) or a tuple of them -> the global batch."""
        if not self.enabled or state is None:
            return state
        if isinstance(state, tuple):
            return tuple(self.gather_rows(s) for s in state)
        parts = [torch.empty_like(state) for _ in range(self.world_size)]
        dist.all_gather(parts, state.contiguous())
        return torch.cat(parts, dim=1)

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's `t` (of one shape on all ranks, e.g. an RNG state), in rank order."""
        if not self.enabled:
            return [t]
        src = t.cuda() if dist.get_backend() == "nccl" and t.device.type != "cuda" else t
        parts = [torch.empty_like(src) for _ in range(self.world_size)]
        dist.all_gather(parts, src.contiguous())
        return [p.to(t.device) for p in parts]

    def slice_rows(self, state):
        """This rank's rows of a global recurrent state (as written in checkpoints)."""
        if not self.enabled or state is None:
            return state
        if isinstance(state, tuple):
            return tuple(self.slice_rows(s) for s in state)
        b = state.size(1) // self.world_size
        return state[:, self.rank * b : (self.rank + 1) * b].contiguous()

    def close(self, wait_for_peers: bool = True) -> None:
        """Leave the process group: every rank calls this on every path out of a run.

        `wait_for_peers` (a normal end, which every rank reaches at the same step):
        first a barrier, so no rank tears down its connections while a peer is still
        in a collective with it. After an error pass False: a peer may be dead.
        The DDP wrapper is dropped before the group is destroyed: its reducer holds
        the group, which is only freed (its threads joined) once nothing refers to it.
        """
        self.ddp = None
        if not (self.owns_group and dist.is_initialized()):
            return
        try:
            if wait_for_peers:
                dist.barrier()
        finally:
            dist.destroy_process_group()
            self.owns_group = False


class PeerFailed(ScalingLabError):
    """Another rank failed (its own message says why): this one stops with its exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _one_line(exc: Exception) -> str:
    """A failed rank's cause, for its peers' messages."""
    text = exc.message if isinstance(exc, ScalingLabError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


class _DDP(DistributedDataParallel):
    """DDP that also answers the model interface (`recurrent`, `init_state`, ...), so
    evaluation and generation code can be handed the wrapped module."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _all_reduce(t: torch.Tensor, op) -> torch.Tensor:
    """All-reduce `t` and return the result on t's device (NCCL reduces GPU tensors only)."""
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        g = t.cuda()
        dist.all_reduce(g, op=op)
        return g.to(t.device)
    dist.all_reduce(t, op=op)
    return t


class RankSlice:
    """Rows [rank·b, (rank+1)·b) of every batch of a loader drawing the global batch."""

    def __init__(self, loader, rank: int, world_size: int):
        self.loader = loader
        self.rank = rank
        self.rows = loader.batch_size // world_size

    @property
    def reset(self) -> bool:
        return self.loader.reset

    def next(self):
        x, y = self.loader.next()
        lo, hi = self.rank * self.rows, (self.rank + 1) * self.rows
        return x[lo:hi], y[lo:hi]

    def state_dict(self) -> dict:
        return self.loader.state_dict()  # the global position: the same on every rank

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The torch seed of rank `rank` > 0 after the model is initialised (at `step`, where
    a resume has no generator of that rank to restore): a stream of its own per rank."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def _init_group(backend: str, rank: int, world: int) -> None:
    """init_process_group, with keys of its own for each torchrun restart.

    torchrun (2.4+) lets workers share its rendezvous TCPStore, and a group made
    after `--max-restarts` restarted the workers can read the previous attempt's
    peer addresses from it (gloo: "connectFullMesh failed ... Connection refused";
    pytorch/pytorch#135712). Prefixing the keys with the restart count isolates
    the attempts.
    """
    timeout = datetime.timedelta(minutes=30)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend, timeout=timeout)
        return
    agent = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
        is_master=False, timeout=timeout,
    )  # fmt: skip
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"scalinglab/attempt-{attempt}", agent)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)


def is_main_process() -> bool:
    """False in the processes of rank > 0 that torchrun starts (they do not report)."""
    return int(os.environ.get("RANK", "0")) == 0


def setup(device: str) -> tuple[Distributed, str]:
    """(Distributed, this process's device) from torchrun's environment, if any.

    `device` is the one the config resolved to; under torchrun `cuda` becomes
    `cuda:LOCAL_RANK`. The process group is created here unless the caller
    already made one.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), device
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        device = f"cuda:{local}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    owns = False
    if not dist.is_initialized():
        _init_group("nccl" if device.startswith("cuda") else "gloo", rank, world)
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise ConfigError("the process group does not match RANK/WORLD_SIZE of the environment")
    log.debug("rank %d of %d on %s (%s)", rank, world, device, dist.get_backend())
    if rank:  # rank 0 reports progress and losses; the others would repeat it
        logging.getLogger("scalinglab").setLevel(logging.WARNING)
    return Distributed(rank, world, owns_group=owns), device
