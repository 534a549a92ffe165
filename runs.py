"""
A train_rl.py run folder, written so that no finished work is ever lost:

    out/config.json    the run's resolved flags and its number of processes
    out/log.jsonl      one record per step (with eval_* figures on evaluation steps)
    out/checkpoint/    actor/, critic/, optim.safetensors (AdamW state) and state.json (the step, whether the
                       run has finished, each step's mean length, that step's log record, the config), swapped
                       in whole: it is always a finished checkpoint

- A folder belongs to one run: a new run refuses a folder that holds anything (--overwrite replaces an
  earlier run's files, and only those), and a lock refuses a second writer.
- A checkpoint swap cut short by a crash is finished when the folder is next read (common.recover_dir).
- The log never disagrees with the checkpoint: --resume cuts the log back to the checkpoint's step, and
  rebuilds that step's record from state.json if a crash came between the save and the log write.
With several processes (torchrun), every process gathers its shards and process 0 writes.
"""

import argparse
import contextlib
import os
from dataclasses import dataclass

import torch

from common import (FolderLock, InputError, check_out_folder, device, publish_dir, read_json, read_jsonl, recover_dir,
                    save_safetensors, write_json, write_jsonl)
from distributed import (Runner, barrier, full_state, is_main, load_optimizer_state, on_main, optimizer_state, shard,
                         world)
from model import GPT, read_safetensors
from tokenizer import Tokenizer

@dataclass
class Models:
    """The run's models, each behind a distributed.Runner (runner(fn, *args) = fn(model, *args), sharded
    under torchrun; runner.model is the GPT), and the optimisers."""

    actor: Runner
    critic: Runner | None  # None for GRPO
    ref: Runner  # the frozen reference policy of the KL term
    rollout: GPT  # the weights sampling runs on: the actor itself, or a copy refreshed after each update
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer | None


def load_models(cfg, actor_path, critic_path):
    """(Models, tokenizer). Every trained or reference model keeps fp32 weights, so the frozen reference runs
    through exactly the actor's numerics (bf16 autocast included) and the KL at step 0 is exactly 0.
    Sampling runs on a copy of the actor when it cannot run on the actor itself: in bf16 runs a bf16 copy
    (with fused projections, for fast decoding), and with several processes a whole-weight copy (the actor
    is sharded)."""
    tok = Tokenizer.load(actor_path)
    load = lambda path, **kw: GPT.from_pretrained(path, dtype=torch.float32, device=cfg.device, **kw)
    actor = load(actor_path)
    ref = load(cfg.ref or cfg.init).eval().requires_grad_(False)
    critic = load(critic_path, value_head=True) if cfg.algo == "ppo" else None
    bf16 = cfg.dtype == "bf16"
    rollout = actor.inference_copy(torch.bfloat16 if bf16 else torch.float32, fused=bf16) \
        if bf16 or world() > 1 else actor
    for m in (actor, critic):
        if m is not None:
            m.grad_checkpointing = cfg.grad_checkpointing
            m.train()
    actor, critic, ref = (shard(m, bf16) if m is not None else None for m in (actor, critic, ref))
    optimizer = lambda m, lr: torch.optim.AdamW(m.parameters(), lr=lr, betas=cfg.adam_betas,
                                                weight_decay=cfg.weight_decay)
    return Models(actor, critic, ref, rollout, optimizer(actor, cfg.actor_lr),
                  optimizer(critic, cfg.critic_lr) if critic is not None else None), tok


RUN_FILES = {"config.json", "log.jsonl", "checkpoint"}  # what a run writes into --out
STATE_VERSION = 3  # of checkpoint/state.json


@contextlib.contextmanager
def claimed(out, resume, overwrite):
    """The run folder `out`, locked by process 0 while the `with` block runs (claim_folder)."""
    lock = on_main(lambda: claim_folder(out, resume, overwrite))
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def claim_folder(out, resume, overwrite):
    """Lock `out` for this run and check that it may be written (see the module docstring)."""
    lock = FolderLock(out)
    try:
        check_out_folder(out, RUN_FILES, resume=resume, overwrite=overwrite)
    except InputError:
        lock.release()
        raise
    return lock


def save_checkpoint(cfg, step, record, models, tok, finished, lengths):
    """Write out/checkpoint (actor/, critic/, optim.safetensors, state.json) as one atomic swap. state.json
    holds the step's log record, so the log can always be made to agree with the checkpoint, whether the run
    has finished, and each step's mean response length (what --stop-length-ratio reads). Every process
    gathers its shards; process 0 writes."""
    trained = {"actor": (models.actor, models.actor_opt), "critic": (models.critic, models.critic_opt)}
    weights = {name: full_state(m.model) for name, (m, _) in trained.items() if m is not None}
    optim = {k: v for name, (m, opt) in trained.items() if m is not None for k, v in
             (optimizer_state(opt, name) or {}).items()}
    if is_main():
        final = os.path.join(cfg.out, "checkpoint")
        tmp = final + ".tmp"
        recover_dir(final)  # also clears a half-written checkpoint.tmp left by a crash
        for name, state in weights.items():
            trained[name][0].model.save(os.path.join(tmp, name), state)
        tok.save(os.path.join(tmp, "actor"))
        save_safetensors(optim, os.path.join(tmp, "optim.safetensors"))
        write_json({"version": STATE_VERSION, "step": step, "finished": finished, "lengths": lengths,
                    "record": record, "config": vars(cfg)}, os.path.join(tmp, "state.json"))
        publish_dir(tmp, final)
    barrier()


def read_state(out):
    """checkpoint/state.json of run folder `out`, after process 0 finishes a swap that a crash cut short."""
    ckpt = os.path.join(out, "checkpoint")
    on_main(lambda: recover_dir(ckpt))
    state = read_json(os.path.join(ckpt, "state.json"), "checkpoint (nothing to resume; start without --resume)")
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise InputError(f"{ckpt}/state.json was written by another version of train_rl.py; resume it with that "
                         "version, or start a new run")
    return state


def resume(out, models, state, finish_record):
    """Load the optimisers' state of run folder `out`'s checkpoint and restore its log (restore_log)."""
    optim = dict(read_safetensors(os.path.join(out, "checkpoint", "optim.safetensors")))
    load_optimizer_state(models.actor_opt, optim, "actor")
    if models.critic is not None:
        load_optimizer_state(models.critic_opt, optim, "critic")
    restore_log(os.path.join(out, "log.jsonl"), state, finish_record)


def start_log(cfg, resume):
    """config.json, and a new empty log.jsonl for a new run (process 0 only)."""
    if is_main():
        write_json(vars(cfg), os.path.join(cfg.out, "config.json"))
        if not resume:
            write_jsonl([], os.path.join(cfg.out, "log.jsonl"))


def progress_line(rec):
    line = (f"step {rec['step']:4d} | reward {rec['reward_mean']:+.3f} | acc {rec['accuracy']:.2f} | "
            f"len {rec['length_mean']:5.1f} [{rec['length_min']:.0f}-{rec['length_max']:.0f}] | "
            f"kl {rec['kl']:+.4f} | ent {rec['entropy']:.3f} | clip {rec['clip_frac']:.3f} | "
            f"vloss {rec['value_loss']:.3f} | {rec['time_total']:.1f}s")
    if "eval_accuracy" in rec:
        line += f" | eval acc {rec['eval_accuracy']:.3f} len {rec['eval_length']:.1f}"
    return line


def restore_log(path, state, finish_record):
    """On resume: the log up to the checkpoint's step and no further. Records of steps after it are dropped
    (they will be redone); the checkpoint's own step comes from state.json when the log lacks it (a crash
    between the save and the log write), completed by finish_record (its held-out evaluation, which every
    process takes part in)."""
    last = state["step"] - 1
    log = [rec for _, rec in read_jsonl(path, "log", torn_tail_ok=True)] if os.path.isfile(path) else []
    logged = [rec for rec in log if rec["step"] == last]
    logged = logged[-1:] or [finish_record(state["record"])]
    if is_main():
        write_jsonl([rec for rec in log if rec["step"] < last] + logged, path)


def resumed_config(out, given, fields):
    """The config saved in run folder `out`, for --resume. Only --ref, --data, --eval-data and --device may be
    given again (`given`: the flags set), so that a moved or copied run folder resumes in place, reading files
    that may have moved too; `fields`: the names a config of this code version has."""
    movable = {"out", "ref", "data", "eval_data", "device"}
    fixed = ", ".join("--" + k.replace("_", "-") for k in sorted(set(given) - movable))
    if out is None or fixed:
        raise InputError(f"--resume continues the saved run in --out; drop {fixed}" if fixed else
                         "--resume needs --out, the run folder to continue")
    saved = read_state(out)["config"]
    if set(saved) != fields:
        raise InputError(f"{out}/checkpoint/state.json was written by another version of train_rl.py")
    cfg = {**saved, **{k: v for k, v in given.items() if k in movable}}
    try:
        device(cfg["device"])
    except argparse.ArgumentTypeError as e:
        raise InputError(f"the run's device {e}; give another --device with --resume") from None
    return cfg
