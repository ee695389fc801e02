"""The generic training loop. It knows nothing of GPT or LSTM beyond `model.recurrent`.

`train(cfg, out_dir)` runs (or resumes) one run into its folder and returns
the result dict also written to RUN/result.json.
"""

import contextlib
import dataclasses
import logging
import math
import signal
import time
from pathlib import Path

import torch

from scalinglab import runfolder
from scalinglab.config import RunConfig, TrainConfig
from scalinglab.data.loader import BatchLoader
from scalinglab.data.shards import MANIFEST, check_integrity, open_shards
from scalinglab.errors import CheckpointError, ConfigError
from scalinglab.fsio import atomic_write_bytes, path_relation
from scalinglab.models.counting import count
from scalinglab.models.registry import build_model
from scalinglab.train import checkpoint, distributed, setup
from scalinglab.train.evaluate import evaluate, summarize
from scalinglab.train.guards import StopOnSignal, finite
from scalinglab.train.metrics import MetricsLog
from scalinglab.train.optim import Schedule, make_optimizer, plan_steps
from scalinglab.train.progress import Progress
from scalinglab.train.trackers import flatten

log = logging.getLogger(__name__)

PERIODIC_EVAL_TOKENS = 1 << 16  # the fixed validation subset of periodic evals, by default
STATE_FORMAT = 1


@dataclasses.dataclass
class Counters:
    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0  # time in training steps (the --time budget's clock)
    wall_seconds: float = 0.0  # all time spent by this run, across resumes
    train_loss: float = math.nan  # last finite training loss
    val_loss: float = math.nan  # last periodic evaluation
    best_val: float = math.inf  # best periodic evaluation (--plateau-factor)
    lr_scale: float = 1.0  # the schedule's LR times this: divided on each plateau


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        out_dir: str | Path,
        progress: bool = False,
        allow_config_change: bool = False,
    ):
        self.t0 = time.perf_counter()
        self.out = Path(out_dir)
        self.progress_enabled = progress
        self.allow_config_change = allow_config_change
        self.changes: dict = {}  # settings changed on this resume (--allow-config-change)
        self.resumed_at: int | None = None  # the step a resume started from
        self.manifest: dict = {}  # of the checkpoint resumed from
        self.lock = None
        self.stopped_by = None  # the signal that preempted the run, if one did
        self.dist, self.device = distributed.setup(setup.pick_device(cfg.train.device))
        self.shards = open_shards(cfg.train.data)
        check_out_apart(self.out, self.shards.path)
        check_integrity(self.shards)  # hashes and token ids, before a step trains on them
        self.dtype_asked = cfg.train.dtype  # "auto" keeps, on resume, what the run started with
        self.cfg = setup.resolve(cfg, self.shards, self.device)
        setup.check_split_sizes(self.cfg, self.shards)
        setup.check_compiler(self.cfg.train, self.device)
        m, t = self.cfg.model, self.cfg.train
        self.restore_torch = setup.configure_torch(t, self.device)
        self.fingerprint = setup.data_fingerprint(self.shards)
        self.run_id = runfolder.run_id(self.cfg, self.fingerprint)
        torch.manual_seed(t.seed)
        try:
            self.model = build_model(m).to(self.device)
        except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            if not setup.out_of_memory(exc):
                raise
            raise ConfigError(setup.too_large(m, self.device)) from None
        if self.dist.rank:  # the same init on every rank; dropout masks of each rank's own
            torch.manual_seed(distributed.rank_seed(t.seed, self.dist.rank))
        fwd = self.dist.wrap(self.model, self.device)  # DDP under torchrun, else the model
        self.fwd = torch.compile(fwd) if t.compile else fwd
        self.counts = count(m)
        self.opt = make_optimizer(self.model, t, self.device.split(":")[0])
        self.loader = BatchLoader(
            self.shards.train, m.block_size, t.batch_size, seed=t.seed, mode=t.order,
            device=self.device,
        )  # fmt: skip
        self.loader = self.dist.shard_loader(self.loader, t.batch_size)
        self.tokens_per_step = t.batch_size * t.grad_accum * m.block_size
        self.total_steps = plan_steps(t, self.tokens_per_step, self.counts.flops_per_token)
        self.schedule = Schedule(
            t.schedule, t.lr, t.min_lr, t.warmup, self.total_steps, t.cooldown_frac
        )
        self.autocast = setup.autocast(self.device, t.dtype)
        self.c = Counters()
        self.schedule_change = None  # the checkpoint's schedule, where the LR of its steps differs
        self.kept_warmup = False  # a continued run keeps the warmup its checkpoint used
        self.lr = t.lr  # the LR of the last step, for the metrics rows
        self.rnn_state = None
        loggers = [*t.loggers, *(["tensorboard"] if t.tensorboard else [])]
        self.metrics = MetricsLog(self.out, loggers, enabled=self.dist.is_main)

    # -- the loop ------------------------------------------------------------

    def train(self) -> dict:
        ended = False  # every rank got here without an error: they leave the group together
        try:
            done = self._start()
            result = done if done is not None else self._loop()
            ended = True
            return result
        finally:
            self.metrics.close()
            self.restore_torch()
            runfolder.release_lock(self.lock)
            self.fwd = self.model  # the DDP wrapper holds the process group
            self.dist.close(wait_for_peers=ended)

    def _loop(self) -> dict:
        bar = Progress(self.progress_enabled and self.dist.is_main, self.total_steps, self.c.step)
        try:
            with StopOnSignal() as stop:
                while not self._budget_spent():
                    if not self._step():
                        return self._finish("diverged")
                    self._after_step(bar)
                    if self.dist.agree_after_step(self.c, stop.requested):
                        self._checkpoint()
                        self.stopped_by = stop.signum
                        return self._finish("preempted")
                # A SIGTERM from here on is ignored: the run is about to complete. Resumed
                # from its last step's checkpoint (a kill during the final evaluation), it
                # trained nothing: that checkpoint is the final one.
                if self.c.step != self.resumed_at:
                    self._checkpoint()
                return self._finish("completed")
        except Exception as exc:
            if not isinstance(exc, ConfigError | CheckpointError):
                try:
                    self._write_result("failed", error=f"{type(exc).__name__}: {exc}")
                except OSError as also:  # a full disk: the error to report is the first,
                    # and a result of an earlier budget left in place would be a wrong record
                    stale = self.out / runfolder.RESULT
                    with contextlib.suppress(OSError):
                        stale.unlink(missing_ok=True)
                    log.warning("could not record the failure in %s (%s); the run has no "
                                "result until it resumes", stale, also.strerror or also)  # fmt: skip
            raise
        finally:
            bar.close()

    def _budget_spent(self) -> bool:
        if self.total_steps is not None:
            return self.c.step >= self.total_steps
        return self.c.train_seconds >= self.cfg.train.time

    def _step(self) -> bool:
        """One optimizer step; False (and no update) when the loss or gradient is not finite."""
        t0 = time.perf_counter()
        t = self.cfg.train
        frac = None if self.total_steps is not None else self.c.train_seconds / t.time
        before = self.schedule.warmup_frac
        lr = self.schedule(self.c.step, frac) * self.c.lr_scale
        began = before is None and self.schedule.warmup_frac is not None  # a time run's decay
        if began and self.c.step < self.schedule.warmup and self.dist.is_main:  # half the budget
            log.warning("--warmup %d is more than half the --time budget: it ended at step %d",
                        t.warmup, self.c.step)  # fmt: skip
        for group in self.opt.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        loss_sum = torch.zeros((), device=self.device)
        for i in range(t.grad_accum):
            with self.dist.no_sync(i < t.grad_accum - 1):
                loss = self._forward(*self.loader.next())
                (loss / t.grad_accum).backward()
            loss_sum += loss.detach()
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), t.grad_clip if t.grad_clip > 0 else math.inf
        )
        # The one host sync per step: the guard must see the values before the update.
        stats = torch.stack([finite(loss_sum, norm).float(), loss_sum / t.grad_accum, norm])
        ok, loss_val, norm_val = self.dist.agree_step(stats).tolist()  # the same on every rank
        if not ok:
            self.opt.zero_grad(set_to_none=True)
            log.error(
                "step %d: non-finite loss %s or gradient norm %s; stopping before the update",
                self.c.step, loss_val, norm_val,
            )  # fmt: skip
            return False
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.c.step += 1
        self.c.tokens += self.tokens_per_step
        self.c.train_loss = loss_val
        self.lr = lr
        self.c.train_seconds += time.perf_counter() - t0
        return True

    def _forward(self, x, y):
        with self.autocast():
            if not self.model.recurrent:
                return self.fwd(x, y)[1]
            if self.loader.reset or self.rnn_state is None:
                self.rnn_state = self.model.init_state(x.size(0), x.device)
            _, loss, state = self.fwd(x, y, state=self.rnn_state)
        # Truncated BPTT: the next window starts from this state, without its graph.
        self.rnn_state = self.model.detach_state(state)
        return loss

    def _after_step(self, bar: Progress) -> None:
        t, step = self.cfg.train, self.c.step
        row = None
        if step % t.log_every == 0 or step == self.total_steps:
            row = self._row(train_loss=self.c.train_loss, lr=self.lr)
        if t.eval_every and step % t.eval_every == 0:
            max_tokens = t.eval_tokens or min(len(self.shards.val) - 1, PERIODIC_EVAL_TOKENS)
            self.c.val_loss = self._eval(max_tokens)
            self._anneal_on_plateau()
            row = (row or self._row(lr=self.lr)) | {"val_loss": self.c.val_loss}
            log.info("step %d: train loss %.4f, val loss %.4f", step, self.c.train_loss,
                     self.c.val_loss)  # fmt: skip
        if row:  # trackers also get the throughput (not a metrics.jsonl column)
            with self.dist.together():  # rank 0 writes: should that fail, every rank stops
                self.metrics.write(row, tracked={"tokens_per_second": self._tokens_per_second()})
        if t.ckpt_every and step % t.ckpt_every == 0:
            self._checkpoint()
        bar.update(step, self.c.tokens, self.c.train_loss, self._tokens_per_second())

    def _anneal_on_plateau(self) -> None:
        """--plateau-factor F: an evaluation no better than the best so far divides the LR by F."""
        f = self.cfg.train.plateau_factor
        if not f:
            return
        if self.c.val_loss < self.c.best_val:
            self.c.best_val = self.c.val_loss
        else:
            self.c.lr_scale /= f
            log.info("step %d: val loss %.4f is no better than %.4f; lr x %g", self.c.step,
                     self.c.val_loss, self.c.best_val, self.c.lr_scale)  # fmt: skip

    def _row(self, **kw) -> dict:
        flops = self.c.tokens * self.counts.flops_per_token
        base = {"step": self.c.step, "tokens": self.c.tokens, "flops": flops}
        return base | kw | {"seconds": round(self._wall(), 3)}

    def _eval(self, max_tokens: int | None) -> float:
        # The plain model, not self.fwd: no torch.compile recompiles for the eval shapes, and
        # the loss is the one `scalinglab eval` computes from the saved weights.
        t = self.cfg.train
        loss, _ = evaluate(
            self.model, self.shards.val, self.cfg.model.block_size, t.batch_size, max_tokens,
            self.device, self.autocast,
        )  # fmt: skip
        return loss

    def _wall(self) -> float:
        return self.c.wall_seconds + time.perf_counter() - self.t0

    def _tokens_per_second(self) -> float:
        return self.c.tokens / self.c.train_seconds if self.c.train_seconds else 0.0

    # -- start, checkpoints, results -----------------------------------------

    def _start(self) -> dict | None:
        """Resume or start fresh; returns the stored result if the run is already complete."""
        mode = self.cfg.train.resume
        root = runfolder.checkpoint_root(self.out)
        if mode == "must" and not self.out.is_dir():  # a mistyped --out: no folder made
            raise CheckpointError(f"--resume must, but {root} holds no valid checkpoint")
        made = runfolder.FolderAsFound.missing_from(self.out)
        found = None
        with self.dist.together():  # rank 0's lock refused: every rank stops, naming it
            self.out.mkdir(parents=True, exist_ok=True)
            if self.dist.is_main:  # one trainer per folder: a second one is refused, naming us
                self.lock = runfolder.hold_lock(self.out)
                found = runfolder.FolderAsFound(self.out, made)
        path = None
        if mode == "never":
            if checkpoint.list_steps(root):
                raise ConfigError(
                    f"--resume never, but {root} already holds checkpoints; "
                    "use --resume auto to continue the run, or a new --out folder"
                )
        else:
            path = checkpoint.latest(root, strict=mode == "must")
            if path is None and mode == "must":
                raise CheckpointError(f"--resume must, but {root} holds no valid checkpoint")
        if path is not None:
            self._load(path)
        self._warn_short_warmup()
        if self.total_steps is not None and self.c.step > self.total_steps:
            kind, amount = self.cfg.train.budget  # before anything in the folder changes
            raise ConfigError(
                f"{self.out} has trained {self.c.step} steps, more than the {self.total_steps} "
                f"of --{kind} {amount:g}: a run continues to a larger budget only; give the "
                "run's own budget or more, or a new --out folder"
            )
        self.dist.check_same(self.c.step, "step to resume from")
        self.resumed_at = self.c.step if path is not None else None
        old = runfolder.read_result(self.out)
        if path is not None and self._budget_spent() and old and old.get("status") == "completed":
            # complete: its result stands, and its config.toml and history.jsonl with it
            if self.dist.is_main and (self.changes or self.schedule_change is not None):
                log.warning("%s is complete; its result stands, and the settings "
                            "changed here are not applied to it", self.out)  # fmt: skip
            elif self.dist.is_main:
                log.info("%s is already complete (step %d): nothing to train", self.out,
                         self.c.step)  # fmt: skip
            return old
        if path is not None:
            log.info("resumed %s from %s (step %d)", self.out, path.name, self.c.step)
        with self.dist.together():  # rank 0 writes: should that fail, every rank stops
            self._write_start(path, found)
        self.t0 = time.perf_counter()  # time spent before this point is set-up, not run time
        return None

    def _write_start(self, path: Path | None, found: runfolder.FolderAsFound | None) -> None:
        """Rank 0 prepares the folder: the trackers started, then metrics cut to the step,
        history, config, tokenizer. A tracker that cannot start (a bad WANDB_PROJECT) stops
        the run with the folder as it was found: a fresh --out left no config.toml and
        tokenizer.json behind, a resume nothing changed; and a tracker's start reads the
        config.toml of the run's last start (the loggers it had: WandbTracker)."""
        try:
            self.metrics.open_trackers(self._hparams(), self.c.step)
        except BaseException:
            if found is not None:
                found.restore()
            raise
        # a run resumed at the end of its budget evaluates again: a final row written before
        # the kill would stand twice
        self.metrics.truncate_after(self.c.step, final_too=self._budget_spent())
        if self.dist.is_main and self.changes:
            self._record_changes(path)
        if self.dist.is_main and self.schedule_change is not None and not self.changes:
            # a new budget or schedule whose LR differs at steps already trained: the run's
            # LR is no longer one schedule of its config (`runs --curves` leaves it out; a
            # config_change, recorded above, says as much)
            runfolder.append_history(self.out, {
                "event": "schedule_change", "step": self.c.step, "checkpoint": path.name,
                "from": self.schedule_change, "to": self.schedule.state_dict(),
            })  # fmt: skip
        if self.dist.is_main:
            runfolder.write_config(self.out, self.cfg)
        if self.dist.is_main and self.shards.tokenizer_path.exists():  # the run alone can generate
            tokenizer = self.shards.tokenizer_path.read_bytes()
            atomic_write_bytes(self.out / runfolder.TOKENIZER, tokenizer)

    def _hparams(self) -> dict:
        """What trackers record of the run: its resolved config and its N, D, C (planned)."""
        steps, c = self.total_steps, self.counts
        tokens = steps * self.tokens_per_step if steps is not None else None
        flops = tokens * c.flops_per_token if tokens is not None else None
        return flatten(self.cfg.to_dict()) | {
            "N": c.params, "N_nonembed": c.params_nonembed, "D": tokens, "C": flops,
            "flops_per_token": c.flops_per_token, "run_id": self.run_id,
        }  # fmt: skip

    def _state(self) -> dict:
        state = {
            "format": STATE_FORMAT,
            "config": self.cfg.to_dict(),
            "data_fingerprint": self.fingerprint,
            "counters": dataclasses.asdict(self.c) | {"wall_seconds": self._wall()},
            "optimizer": self.opt.state_dict(),
            "schedule": self.schedule.state_dict(),
            "loader": self.loader.state_dict(),
            "rng_cpu": torch.get_rng_state(),  # rank 0's (a single process's)
            "rnn_state": self.dist.gather_rows(self.rnn_state),  # the global batch's lanes
        }
        if self.device.startswith("cuda"):
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.dist.enabled:  # every rank's generator: each draws its own dropout masks
            state["rng_cpu_ranks"] = self.dist.gather(state["rng_cpu"])
            if "rng_cuda" in state:
                state["rng_cuda_ranks"] = self.dist.gather(state["rng_cuda"])
        return state

    def _checkpoint(self) -> None:
        state = self._state()  # on every rank: it gathers the carried RNN state
        with self.dist.together():  # rank 0 writes: should that fail, every rank stops
            if self.dist.is_main:
                owner = runfolder.checkpoint_owner(self.cfg, self.fingerprint)
                root, keep = runfolder.checkpoint_root(self.out), self.cfg.train.keep_ckpts
                earlier = runfolder.own_lineages(self.out, owner["lineage_id"])
                checkpoint.save(root, self.c.step, self.model, state, keep, owner, earlier)

    def _warn_short_warmup(self) -> None:
        t = self.cfg.train
        asked = t.warmup != TrainConfig.warmup  # the default's 100 fits short runs quietly
        if self.schedule.warmup >= t.warmup or not asked or not self.dist.is_main:
            return
        if self.kept_warmup:
            log.warning(
                "--warmup %d was more than half the steps of the run continued here: it "
                "keeps the warmup of %d steps they trained with",
                t.warmup, self.schedule.warmup,
            )  # fmt: skip
        else:
            log.warning(
                "--warmup %d is more than half the run's %d steps: it warms up over %d",
                t.warmup, self.total_steps, self.schedule.warmup,
            )  # fmt: skip

    def _keep_warmup(self, saved: dict, config: dict) -> None:
        """A run continued to a larger step budget keeps the warmup it trained with: one
        that started too short for its --warmup warmed up over half its steps, and the
        cap of the larger budget would give the steps already trained another LR. Only
        while --warmup is the one it started with (a changed one applies as asked)."""
        was = saved.get("warmup")
        if self.schedule.total is None or saved.get("total") is None or was is None:
            return
        if config.get("warmup") == self.cfg.train.warmup and was < self.schedule.warmup:
            self.schedule.warmup = int(was)
            self.kept_warmup = True

    def _load(self, path: Path) -> None:
        state = checkpoint.load_state(path, map_location=self.device)
        conflicts = setup.resume_conflicts(state, self.cfg, self.fingerprint)
        if conflicts:
            raise ConfigError(
                f"cannot resume {self.out} from {path.name}: the model or data changed ("
                + "; ".join(conflicts)
                + "); use a new --out folder or the checkpoint's settings"
            )
        self._keep_started_dtype(state.get("config", {}).get("train", {}).get("dtype"))
        # After the dtype is settled: the run's identity includes it.
        self.manifest = checkpoint.read_manifest(path)
        self.changes = runfolder.check_checkpoint(
            path, self.manifest, self.cfg, self.fingerprint, state.get("config"),
            self.allow_config_change,
        )  # fmt: skip
        checkpoint.load_weights(self.model, path)
        self.opt.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.c = Counters(**state["counters"])
        self._restore_rng(state)
        self.rnn_state = self.dist.slice_rows(state["rnn_state"])
        saved = state.get("schedule") or {}
        self._keep_warmup(saved, (state.get("config") or {}).get("train", {}))
        if self.schedule.total is None:  # a time budget: where its decay began, if it has
            # (a checkpoint from before warmup_frac was saved decayed over the whole budget)
            began = None if self.c.step < self.schedule.warmup else 0.0
            began = saved.get("warmup_frac", began)
            old_time = (state.get("config") or {}).get("train", {}).get("time") or 0.0
            if began is not None and old_time > 0:  # a fraction of that run's budget: of ours
                began = min(1.0, began * old_time / self.cfg.train.time)
            self.schedule.warmup_frac = began
        if saved and "warmup_frac" not in saved:
            saved = {**saved, "warmup_frac": self.schedule.warmup_frac}
        self.schedule_change = schedule_change(saved, self.schedule, self.c.step)

    def _restore_rng(self, state: dict) -> None:
        """This rank's generators as the checkpoint saved them. A rank it holds none for
        (a resume on more processes) starts a stream of its own, not a copy of rank 0's."""
        rank = self.dist.rank
        cpu = state.get("rng_cpu_ranks") or [state["rng_cpu"]]
        cuda = state.get("rng_cuda_ranks") or [state.get("rng_cuda")]
        if rank >= len(cpu):
            torch.manual_seed(distributed.rank_seed(self.cfg.train.seed, rank, self.c.step))
            return
        torch.set_rng_state(cpu[rank].cpu())
        if rank < len(cuda) and cuda[rank] is not None and self.device.startswith("cuda"):
            torch.cuda.set_rng_state(cuda[rank].cpu(), self.device)

    def _record_changes(self, path: Path) -> None:
        """--allow-config-change: the run goes on under new settings; RUN/history.jsonl
        says from which step, what changed, and the run ids before and after."""
        log.warning(
            "%s continues from %s with changed settings: %s (recorded in %s)",
            self.out, path.name, runfolder.describe_changes(self.changes),
            runfolder.HISTORY,
        )  # fmt: skip
        runfolder.append_history(self.out, {
            "event": "config_change", "step": self.c.step, "checkpoint": path.name,
            "changes": self.changes,
            "from_run_id": self.manifest.get("run_id"), "to_run_id": self.run_id,
            "from_lineage": self.manifest.get("lineage_id"),
            "to_lineage": runfolder.lineage_id(self.cfg, self.fingerprint),
        })  # fmt: skip

    def _keep_started_dtype(self, started: str | None) -> None:
        """Under --dtype auto a resumed run keeps the dtype it started with, even where
        auto now resolves otherwise (another machine, a newer rule): one run, one arithmetic."""
        if self.dtype_asked != "auto" or started not in ("float32", "bfloat16"):
            return
        if started != self.cfg.train.dtype:
            log.info("resuming in %s, the dtype this run started with (--dtype auto)", started)
            train = dataclasses.replace(self.cfg.train, dtype=started)
            self.cfg = dataclasses.replace(self.cfg, train=train)
            self.autocast = setup.autocast(self.device, started)
            self.run_id = runfolder.run_id(self.cfg, self.fingerprint)

    def _finish(self, status: str) -> dict:
        with self.dist.together():  # rank 0 writes the result: should that fail, all stop
            return self._final_result(status)

    def _final_result(self, status: str) -> dict:
        """The final evaluation (on every rank; no collective) and the result."""
        final = {}
        if status == "completed":
            t = self.cfg.train
            loss, n = evaluate(
                self.model, self.shards.val, self.cfg.model.block_size, t.batch_size,
                t.eval_tokens or None, self.device, self.autocast,
            )  # fmt: skip
            if not math.isfinite(loss):  # every step finite, the model's outputs are not
                log.error("step %d: the final validation loss is %s: the run diverged",
                          self.c.step, loss)  # fmt: skip
                return self._write_result("diverged", error=f"final validation loss {loss}")
            s = summarize(loss, self.shards.bytes_per_token("val"))
            final = {"val_loss": loss, "val_ppl": s["perplexity"], "val_bpb": s["bits_per_byte"]}
            final["eval_tokens"] = n
            self.metrics.write(self._row(val_loss=loss, final=True))
            log.info("step %d: final val loss %.4f (%d tokens)", self.c.step, loss, n)
        return self._write_result(status, **final)

    def _write_result(self, status: str, **extra) -> dict:
        m, n_train = self.cfg.model, len(self.shards.train)
        tokens, c = self.c.tokens, self.counts
        result = {
            "status": status, "run_id": self.run_id, "arch": m.arch, "preset": m.preset,
            "val_loss": None, "val_ppl": None, "val_bpb": None,
            "last_eval_loss": self.c.val_loss, "train_loss": self.c.train_loss,
            "params": c.params, "params_nonembed": c.params_nonembed,
            "flops_per_token": c.flops_per_token, "steps": self.c.step, "tokens": tokens,
            # the warmup it used: config.toml keeps the --warmup asked for (the run's id),
            # which the schedule caps at half a step budget; a time budget's ends by the clock
            "warmup": self.schedule.warmup if self.schedule.total is not None else None,
            "flops": tokens * c.flops_per_token, "flops_6nd": 6 * c.params * tokens,
            "unique_tokens": min(tokens, n_train), "epochs": tokens / n_train,
            "wall_seconds": self._wall(), "train_seconds": self.c.train_seconds,
            "tokens_per_second": self._tokens_per_second(), "vocab_size": m.vocab_size,
            "device": self.device, "dtype": self.cfg.train.dtype,
            "tokenizer": self.shards.tokenizer, "tokenizer_id": self.shards.tokenizer_id,
        } | extra  # fmt: skip
        if status == "preempted" and self.stopped_by == signal.SIGINT:
            result["signal"] = "SIGINT"  # Ctrl-C, not a scheduler's SIGTERM: exit code 130
        changes = [h for h in runfolder.read_history(self.out) if h.get("event") == "config_change"]
        if changes:  # a mixed run: its settings changed on a resume (RUN/history.jsonl)
            result["config_changes"] = len(changes)
        if not self.dist.is_main:
            return result
        result = runfolder.write_result(self.out, result)
        self.metrics.finish(result)
        return result


def schedule_change(saved: dict | None, now: Schedule, steps: int) -> dict | None:
    """The checkpoint's schedule (its state) where its LR at steps 0..steps−1 is not the
    schedule's `now` (a new budget or decay continuing a run); None where they agree (a
    larger budget of a constant or WSD run before its decay, a WSD branch of its stable
    run). A time budget's LR follows the clock: any change of it counts."""
    if not saved or saved == now.state_dict():
        return None
    old = Schedule(**saved)
    if old.total is None or now.total is None:
        return saved
    same = all(math.isclose(old(s), now(s), rel_tol=1e-12, abs_tol=0.0) for s in range(steps))
    return None if same else saved


def train(
    cfg: RunConfig, out_dir: str | Path, progress: bool = False, allow_config_change: bool = False
) -> dict:
    """Train (or resume, per cfg.train.resume) one run into `out_dir`; return its result.

    result["status"] is completed, diverged, preempted (SIGTERM) or failed.
    `allow_config_change`: resume from this run's checkpoint although training settings
    changed since it was written (else refused); the change goes into RUN/history.jsonl.
    """
    out_dir = runfolder.folder_arg(out_dir)  # None, or a file: one line, not pathlib's error
    return Trainer(cfg, out_dir, progress=progress, allow_config_change=allow_config_change).train()


def check_out_apart(out: Path, shards: Path) -> None:
    """Refuse a run folder that is the shards folder, lies inside it, or is another shards
    folder: the run wrote its checkpoints, config and tokenizer.json among the shards."""
    how = path_relation(out, shards)
    if how in ("is", "lies inside"):
        raise ConfigError(
            f"--out {out} {how} the shards folder {shards} (--data); choose an --out outside it"
        )
    if (out / MANIFEST).is_file():
        raise ConfigError(
            f"--out {out} is a shards folder (it holds {MANIFEST}); choose another --out"
        )
