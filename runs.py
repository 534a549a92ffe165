"""
A train_rl.py run folder, written so that no finished work is ever lost:

    out/config.json    the run's resolved flags and its number of processes
    out/log.jsonl      one record per step (with eval_* figures on evaluation steps)
    out/checkpoint/    actor/, critic/, optim.safetensors (AdamW state) and state.json (the step, whether the
                       run has finished, each step's mean length, that step's log record, the config), swapped
                       in whole: it is always a finished checkpoint
    out/actors/step-N/ with --keep-every: the actor after step N, kept for evaluating later (hard links to the
                       checkpoint's files, which later saves replace and never change)

- A folder belongs to one run: a new run refuses a folder that holds anything, and a lock refuses a second
  writer. Nothing in the folder changes before its lock is held.
- --overwrite replaces an earlier run's files, and only those. Once every input of the new run is checked
  they move to out/replaced/; they are deleted when the new run saves its first checkpoint, and put back if
  it stops before one (a crash, NaN, out of memory, Ctrl-C while loading), so a failed overwrite loses
  nothing (settle_replaced).
- A checkpoint swap cut short by a crash is finished when the run resumes (common.recover_dir).
- The log never disagrees with the checkpoint: --resume cuts the log back to the checkpoint's step, and
  rebuilds that step's record from state.json if a crash came between the save and the log write.
With several processes (torchrun), every process gathers its shards and process 0 writes.
"""

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass

import torch

import memory
from common import (FolderLock, InputError, check_out_folder, device, folder_bytes, has_critic, lock_holder,
                    newest_dir, publish_dir, read_json, read_jsonl, recover_dir, remove_names, save_safetensors,
                    sha256_of, write_json, write_jsonl)
from distributed import (Runner, barrier, full_state, is_main, load_optimizer_state, on_main, optimizer_state, shard,
                         world)
from model import GPT, read_checkpoint, read_safetensors
from tokenizer import BYTES_FILE, HF_FILES, Tokenizer

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


def check_models(cfg, actor_path, critic_path):
    """Refuse a reference or critic that cannot read the actor's tokens (a model of another family): all three
    models run on the actor's token ids. Reads config.json files only."""
    vocab = read_checkpoint(actor_path)[0].vocab_size
    others = [("--ref", cfg.ref or cfg.init, False)]  # (flag, folder, whether a value-head checkpoint may be given)
    if has_critic(cfg.algo):
        others.append(("--critic-init", critic_path, True))
    for flag, path, critic in others:
        theirs = read_checkpoint(path, critic=critic)[0].vocab_size
        if theirs != vocab:
            raise InputError(f"{flag} {path} has a vocabulary of {theirs} tokens, the actor {actor_path} one of "
                             f"{vocab}: the models must share the actor's tokenizer; give a {flag} of its family")


def load_models(cfg, actor_path, critic_path):
    """(Models, tokenizer), after check_models. Every trained or reference model keeps fp32 weights, so the
    frozen reference runs through exactly the actor's numerics (bf16 autocast included) and the KL at step 0
    is exactly 0.
    Sampling runs on a copy of the actor when it cannot run on the actor itself: in bf16 runs a bf16 copy
    (with fused projections, for fast decoding), and with several processes a whole-weight copy (the actor
    is sharded)."""
    check_models(cfg, actor_path, critic_path)
    tok = Tokenizer.load(actor_path)
    bf16 = cfg.dtype == "bf16"

    def load(path, trained=True, **kw):  # sharded as soon as it is loaded: a GPU holds one whole model at a time
        model = GPT.from_pretrained(path, dtype=torch.float32, device=cfg.device, **kw)
        model.grad_checkpointing = trained and cfg.grad_checkpointing
        return shard(model.train() if trained else model.eval().requires_grad_(False))

    actor = load(actor_path)
    ref = load(cfg.ref or cfg.init, trained=False)
    critic = load(critic_path, value_head=True) if has_critic(cfg.algo) else None
    rollout = actor.model.inference_copy(torch.bfloat16 if bf16 else torch.float32, fused=bf16) \
        if bf16 or world() > 1 else actor.model  # made from the shards, gathered one tensor at a time
    optimizer = lambda m, lr: torch.optim.AdamW(m.parameters(), lr=lr, betas=cfg.adam_betas,
                                                weight_decay=cfg.weight_decay)
    return Models(actor, critic, ref, rollout, optimizer(actor, cfg.actor_lr),
                  optimizer(critic, cfg.critic_lr) if critic is not None else None), tok


MODEL_FILES = dict.fromkeys(["config.json", "model.safetensors", BYTES_FILE, *HF_FILES])  # GPT.save, Tokenizer.save
# What a run writes into --out (common.foreign_files): what save_checkpoint writes, and nothing else, is a checkpoint.
KEPT = "actors"  # out/actors/step-N/: --keep-every's actors
RUN_FILES = {"config.json": None, "log.jsonl": None,
             "checkpoint": {"actor": MODEL_FILES, "critic": MODEL_FILES, "optim.safetensors": None, "state.json": None},
             KEPT: {re.compile(r"step-[1-9][0-9]*"): MODEL_FILES}}  # step-N as keep_actor names it, nothing else
REPLACED = "replaced"  # out/replaced/: the earlier run that --overwrite replaces, until the new run's first save
RUN_FILES[REPLACED] = dict(RUN_FILES)
STATE_VERSION = 3  # of checkpoint/state.json
INPUTS = ("init", "ref", "critic_init", "data", "eval_data")  # the config's paths a run reads


@contextlib.contextmanager
def claimed(out, resume, overwrite):
    """The run folder `out`, locked by process 0 while the `with` block runs (claim_folder). Yields the earlier
    run's names that --overwrite replaces (None on the other processes), for set_aside once the new run's
    inputs are checked; on the way out, a run set aside comes back if the new one saved no checkpoint."""
    lock, earlier = on_main(lambda: claim_folder(out, resume, overwrite)) or (None, None)
    try:
        yield earlier
    finally:
        if lock is not None:
            if settle_replaced(out):
                print(f"{out}: this run stopped before its first checkpoint, so the run it was to replace "
                      "(--overwrite) is back in place", file=sys.stderr)
            lock.release()


def claim_folder(out, resume, overwrite):
    """(the lock on `out`, the earlier run's names there that --overwrite replaces), once `out` is checked to
    be writable by this run (see the module docstring). Nothing in `out` changes before the lock is held."""
    lock = FolderLock(out)
    if settle_replaced(out):
        print(f"{out}: an --overwrite run had stopped there before its first checkpoint; the run it was to "
              "replace is back in place", file=sys.stderr)
    fix = "continue it with --resume, or replace it with --overwrite" if os.path.isfile(state_path(out)) else \
        f"it {NO_CHECKPOINT_YET}"
    try:
        return lock, check_out_folder(out, RUN_FILES, resume=resume, overwrite=overwrite, fix=fix)
    except InputError:
        lock.release(refused=True)
        raise


def set_aside(out, names):
    """Move the earlier run's `names` (check_out_folder's list) into out/replaced/, which appears whole in one
    rename: a crash before it leaves out/replaced.tmp, whose files settle_replaced moves back."""
    aside = os.path.join(out, REPLACED)
    os.makedirs(aside + ".tmp")
    for name in names:
        os.replace(os.path.join(out, name), os.path.join(aside + ".tmp", name))
    os.replace(aside + ".tmp", aside)


def settle_replaced(out):
    """Finish an --overwrite in `out` (the caller holds its lock): once the new run has a checkpoint the earlier
    run in out/replaced/ is deleted; while it has none, the new run's files are deleted and the earlier run's
    moved back. Every stage can be cut short by a crash and is finished by the next call: replaced.tmp/ is
    always on its way back, replaced.old/ on its way out. True when it put an earlier run back."""
    aside = os.path.join(out, REPLACED)
    if os.path.isdir(aside) and not os.path.isfile(state_path(out)):
        new = [name for name in os.listdir(out) if name != ".lock" and not name.startswith(REPLACED)]
        remove_names(out, new)
        os.replace(aside, aside + ".tmp")
    restored = os.path.isdir(aside + ".tmp")
    if restored:
        for name in os.listdir(aside + ".tmp"):
            os.replace(os.path.join(aside + ".tmp", name), os.path.join(out, name))
        os.rmdir(aside + ".tmp")
    if os.path.isdir(aside):
        os.replace(aside, aside + ".old")
    if os.path.isdir(aside + ".old"):
        shutil.rmtree(aside + ".old")
    return restored


def check_disk(cfg, models, start=0):
    """Refuse a run whose checkpoints do not fit the free space at --out (checked on process 0): a save writes
    the new checkpoint beside the last before deleting it, so a run needs room for two, less the checkpoint
    already there (its own on --resume; on --overwrite the earlier run's, deleted at the first save), and room
    for the actors --keep-every keeps from step `start` on (memory.kept_actors)."""
    params = {name: sum(p.numel() for p in m.model.parameters())  # numel: the whole parameter, sharded or not
              for name, m in (("actor", models.actor), ("critic", models.critic)) if m is not None}
    size = memory.CHECKPOINT_BYTES_PER_PARAM * sum(params.values())
    kept, each = memory.kept_actors(cfg, start), memory.ACTOR_BYTES_PER_PARAM * params["actor"]
    need, free = memory.disk_needed(cfg.out, size, kept * each)[0], memory.free_bytes(cfg.out)
    if free < need:
        actors = f", and {kept} kept actors of {size_text(each)}" if kept else ""
        raise InputError(f"--out {cfg.out}: {size_text(free)} free, but the run needs {size_text(need)} for its "
                         f"checkpoints (each {size_text(size)}, and a save writes the new one before deleting the "
                         f"last{actors}); free some space or pick another --out")


def size_text(n):
    """Bytes in words: GiB from 1 GiB up (a paper-scale checkpoint: 37.1 GiB), else MiB (a toy one: 18.11 MiB)."""
    return f"{n / memory.GIB:.2f} GiB" if n >= memory.GIB else f"{n / 2**20:.2f} MiB"


def check_inputs_outside(cfg):
    """Refuse to --overwrite a run folder that holds one of the new run's inputs (the old run's model, say)."""
    folder = os.path.realpath(cfg.out)
    for name in INPUTS:
        path = getattr(cfg, name)
        if path and os.path.commonpath([os.path.realpath(path), folder]) == folder:
            raise InputError(f"--{name.replace('_', '-')} {path} lies inside --out {cfg.out}, which --overwrite "
                             "deletes; copy it out of the run folder first, or pick another --out")


def save_checkpoint(cfg, step, record, models, tok, finished, lengths, inputs=None):
    """Write out/checkpoint (actor/, critic/, optim.safetensors, state.json) as one atomic swap. state.json
    holds the step's log record, so the log can always be made to agree with the checkpoint, whether the run
    has finished, and each step's mean response length (what --stop-length-ratio reads). Every process
    gathers its shards; process 0 writes. Returns (on process 0, else None) the line that says where, how big
    the checkpoint is and how long the save took, for the caller to print after the step's own line."""
    t0 = time.perf_counter()
    trained = {"actor": (models.actor, models.actor_opt), "critic": (models.critic, models.critic_opt)}
    weights = {name: full_state(m.model) for name, (m, _) in trained.items() if m is not None}
    optim = {k: v for name, (m, opt) in trained.items() if m is not None for k, v in
             (optimizer_state(opt, name) or {}).items()}

    def write():
        final = os.path.join(cfg.out, "checkpoint")
        tmp = final + ".tmp"
        recover_dir(final)  # also clears a half-written checkpoint.tmp left by a crash
        try:
            for name, state in weights.items():
                trained[name][0].model.save(os.path.join(tmp, name), state)
            tok.save(os.path.join(tmp, "actor"))
            save_safetensors(optim, os.path.join(tmp, "optim.safetensors"))
            write_json({"version": STATE_VERSION, "step": step, "finished": finished, "lengths": lengths,
                        "record": record, "config": vars(cfg), "inputs": inputs}, os.path.join(tmp, "state.json"))
        except OSError as e:  # a full disk, say: the half-written copy goes, the last checkpoint is untouched
            shutil.rmtree(tmp, ignore_errors=True)
            last = f"the checkpoint of step {saved_state(cfg.out)['step']} is intact; once that is fixed, continue " \
                f"with --resume --out {cfg.out}" if os.path.isdir(final) else "no checkpoint was saved before it"
            raise InputError(f"could not save the checkpoint of step {step} in {final} ({e.strerror or e}); {last}") \
                from None
        publish_dir(tmp, final)
        settle_replaced(cfg.out)  # the run that --overwrite replaced, if any, goes now
        keep_actor(cfg, step)
        written = folder_bytes(final)  # at paper scale tens of GiB: the save is worth timing
        return f"saved {final} at step {step} ({size_text(written)}, {time.perf_counter() - t0:.2f} s)"

    line = on_main(write)  # a failure stops every process
    barrier()
    return line


def keep_actor(cfg, step):
    """With --keep-every, the checkpoint's actor after `step` steps also becomes out/actors/step-N (process 0,
    after the checkpoint's save). Its files are hard links to the checkpoint's (copies where the file system has
    none): a save writes new files and deletes the old ones, so a link keeps the old content and costs no
    space until then. Called again on --resume, it makes the one a crash right after the save left out."""
    final = os.path.join(cfg.out, KEPT, f"step-{step}")
    if not cfg.keep_every or step % cfg.keep_every or os.path.isdir(final):
        return
    source, tmp = os.path.join(cfg.out, "checkpoint", "actor"), final + ".tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for name in os.listdir(source):
            try:
                os.link(os.path.join(source, name), os.path.join(tmp, name))
            except OSError:  # a file system without hard links
                shutil.copy2(os.path.join(source, name), os.path.join(tmp, name))
        publish_dir(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"could not keep the actor of step {step} in {final} ({e.strerror or e}); the checkpoint of "
                         f"step {step} is intact: once that is fixed, --resume --out {cfg.out} keeps it") from None


def saved_step(out):
    """The step of the checkpoint in run folder `out`, or None if none was saved yet (read only)."""
    path = state_path(out)
    return read_json(path)["step"] if os.path.isfile(path) else None


def kept_text(out):
    """What a run stopped now can continue from, in words (read only)."""
    step = saved_step(out)
    if step is None:
        return "no checkpoint was saved yet, so there is nothing to resume: start the run again with --overwrite"
    return f"the checkpoint of step {step} is intact; continue with --resume --out {out}"


def read_state(out):
    """checkpoint/state.json of run folder `out`, after process 0 finishes a swap that a crash cut short (the
    caller holds the folder's lock)."""
    on_main(lambda: recover_dir(os.path.join(out, "checkpoint")))
    return saved_state(out)


def state_path(out):
    """checkpoint/state.json of run folder `out`, in the folder that recover_dir makes the checkpoint (changing
    nothing: a process without the lock, such as a refused second writer, may call it)."""
    return os.path.join(newest_dir(os.path.join(out, "checkpoint")), "state.json")


NO_CHECKPOINT_YET = "was stopped before its first checkpoint, so there is nothing to resume: start it again with " \
    "--overwrite"


def saved_state(out):
    """checkpoint/state.json of run folder `out`, read only (state_path)."""
    path = state_path(out)
    if not os.path.isfile(path) and os.path.isfile(os.path.join(out, "model.safetensors")):
        raise InputError(f"{out} is a model (train_sft.py's, or a Hugging Face folder), not a train_rl.py run folder: "
                         f"nothing to resume; to train from it, give --init {out} and a new --out")
    if not os.path.isfile(path) and os.path.isfile(os.path.join(out, "config.json")):
        holder = lock_holder(out)
        kept = f" (the run it was to replace is kept in {out}/{REPLACED}: train_rl.py without --resume puts it " \
            "back first)" if any(n.startswith(REPLACED) for n in os.listdir(out)) else ""
        raise InputError(f"{out} is in use by {holder}, which has not saved a checkpoint yet; wait for it to save "
                         "or finish" if holder else f"{out}: its run {NO_CHECKPOINT_YET}{kept}")
    state = read_json(path, "checkpoint (nothing to resume; start without --resume)")
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise InputError(f"{path} was written by another version of train_rl.py; resume it with that "
                         "version, or start a new run")
    fields = {"step": int, "finished": bool, "lengths": list, "record": dict, "config": dict}
    wrong = [name for name, kind in fields.items() if not isinstance(state.get(name), kind)]
    if wrong:
        raise damaged(path, f"{', '.join(wrong)} missing or of the wrong type")
    return state


def damaged(path, why):
    """The error for a checkpoint or log file that a run wrote but that no longer reads as one."""
    return InputError(f"{path}: {why}; the run folder is damaged: restore it from a copy, or start the run again "
                      "with --overwrite")


def resume(out, models, state, finish_record):
    """Load the optimisers' state of run folder `out`'s checkpoint and restore its log (restore_log)."""
    path = os.path.join(out, "checkpoint", "optim.safetensors")
    if not os.path.isfile(path):
        raise damaged(path, "missing")
    try:
        for prefix, opt in (("actor", models.actor_opt), ("critic", models.critic_opt)):
            def mine(name, prefix=prefix):  # names are model.parameter.key; another kind of file raises ValueError
                model, _, _ = name.split(".")
                return model == prefix

            if opt is not None:  # read as it goes: each process holds one whole tensor at a time, not the file
                load_optimizer_state(opt, read_safetensors(path, keep=mine), prefix)
    except (KeyError, IndexError, ValueError, RuntimeError) as e:  # names or shapes of another model's state
        raise damaged(path, f"not this run's optimiser state ({type(e).__name__}: {e})") from None
    restore_log(os.path.join(out, "log.jsonl"), state, finish_record)


def start_log(cfg, resume):
    """config.json, and a new empty log.jsonl for a new run (process 0 only)."""
    if is_main():
        write_json(vars(cfg), os.path.join(cfg.out, "config.json"))
        if not resume:
            write_jsonl([], os.path.join(cfg.out, "log.jsonl"))


def progress_line(rec, left=None, at_most=False):
    """A step's line on the terminal, numbered as saves and kept actors count (step N: N steps done, so the line
    of step N and "saved ... at step N" agree; the log's "step" is 0-based, N - 1). `left`: the estimated
    seconds the run has left (None: not shown); `at_most`: the run may stop before its last step
    (--stop-length-ratio)."""
    num = lambda name: "-" if rec[name] is None else f"{rec[name]:.3f}"  # None: not measured this step
    line = (f"step {rec['step'] + 1:4d} | reward {rec['reward_mean']:+.3f} | acc {rec['accuracy']:.2f} | "
            f"len {rec['length_mean']:5.1f} [{rec['length_min']:.0f}-{rec['length_max']:.0f}] | "
            f"kl {rec['kl']:+.4f} | ent {num('entropy')} | clip {num('clip_frac')} | "
            f"vloss {num('value_loss')} | {rec['time_wall']:.1f}s")
    if "eval_accuracy" in rec:
        line += f" | eval acc {rec['eval_accuracy']:.3f} len {rec['eval_length']:.1f}"
    if left is not None:
        line += f" | {'at most ' if at_most else ''}{duration(left)} left"
    return line


def duration(seconds):
    """A time span in its two largest units: 42s, 3m05s, 2h07m, 3d04h."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s // 60 % 60:02d}m"
    return f"{s // 86400}d{s // 3600 % 24:02d}h"


def restore_log(path, state, finish_record):
    """On resume: the log up to the checkpoint's step and no further. Records of steps after it are dropped
    (they will be redone); the checkpoint's own step comes from state.json when the log lacks it (a crash
    between the save and the log write), completed by finish_record (its held-out evaluation, which every
    process takes part in)."""
    last = state["step"] - 1
    log = []
    for where, rec in read_jsonl(path, "log", torn_tail_ok=True) if os.path.isfile(path) else []:
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            raise damaged(where, "not a step's record")
        log.append(rec)
    logged = [rec for rec in log if rec["step"] == last]
    logged = logged[-1:] or [finish_record(state["record"])]
    if is_main():
        write_jsonl([rec for rec in log if rec["step"] < last] + logged, path)


def model_fingerprint(folder):
    """A model folder's content, cheaply: its config, each weights file's size and its first and last MiB (a
    moved or copied folder keeps it; another model of the same shape does not)."""
    parts = [read_json(os.path.join(folder, "config.json"), "config.json")]
    for name in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
        with open(os.path.join(folder, name), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(2**20)
            f.seek(max(0, size - 2**20))
            parts.append([name, size, hashlib.sha256(head + f.read()).hexdigest()])
    return sha256_of(parts)


def inputs_of(cfg, problems, eval_problems):
    """What a run's results depend on besides its config and checkpoint: the problems it trains and evaluates
    on and the reference policy, by content, not by path (state.json keeps it; check_inputs compares)."""
    return {"problems": sha256_of(problems), "eval_problems": sha256_of(eval_problems),
            "reference": model_fingerprint(cfg.ref or cfg.init)}


def check_inputs(out, state, inputs, problems, eval_problems):
    """Refuse to resume on other problems or another reference than the run started with (a phase-2 set
    selected again into the same file, say): the run would go on quietly training something else. Runs saved
    before id-less records were named "line N" hashed them named "PATH:N" (their file's path then): the same
    problems so named are accepted too."""
    what = {"problems": "--data problems", "eval_problems": "--eval-data problems", "reference": "reference policy"}
    then = {"problems": sha256_of(path_named(problems, state["config"]["data"])),
            "eval_problems": sha256_of(path_named(eval_problems, state["config"]["eval_data"]))}
    saved = state.get("inputs") or {}
    changed = [what[k] for k, v in saved.items() if k in inputs and v not in (inputs[k], then.get(k))]
    if changed:
        raise InputError(f"the run's {' and '.join(changed)} are not those it started with (the files changed since); "
                         f"give the same ones with --resume, or start a new run from {out}/checkpoint/actor")


def path_named(problems, path):
    """The problems with each "line N" id as the versions before it named an id-less record: "PATH:N"."""
    return problems and [{**p, "id": f"{path}:{p['id'][5:]}"} if p["id"].startswith("line ") else p for p in problems]


# Flags that --resume takes again: where the run's files are now (a moved or copied run folder resumes in
# place) and how much memory a step takes, which changes neither the samples (each row has its own random
# stream) nor the gradients (normalised per optimiser step), up to rounding; after an out-of-memory error
# the run continues with smaller batches.
MOVABLE = {"out", "ref", "data", "eval_data", "device"}
TUNABLE = {"sample_batch", "micro_batch", "micro_batch_tokens", "grad_checkpointing", "sampler"}


def same_value(name, value, saved):
    """Whether flag `name` given as `value` holds the saved config's value: paths compare absolute (as a run saves
    them), and --scale auto matches the scale it chose (from --init, compared on its own)."""
    if name in INPUTS and value:
        value, then = os.path.abspath(value), saved.get(name)
        if isinstance(then, str) and os.path.exists(value) and os.path.exists(then) and os.path.samefile(value, then):
            return True  # the same folder or file by another path (a link, say)
    if name == "scale" and value == "auto":
        return True
    return name in saved and value == saved[name]


def flag_text(value):
    """A config value as it is written on the command line: [4, 5] -> 4,5; True -> true; None -> not given."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(flag_text, value))
    return "not given" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def resumed_config(out, given, fields, refusal, new_flags):
    """The config saved in run folder `out`, for --resume, with the MOVABLE and TUNABLE flags in `given` (the
    flags set) applied. Any other flag must hold the run's own value (so the command that started the run, plus
    --resume, continues it); one that differs is refused. `fields`: the names a config of this code version has;
    refusal(config): why a saved value is not one its flag gives (common.Parser.refusal); new_flags: the values
    of flags added since, for configs saved without them (train_rl.NEW_FLAGS)."""
    movable = MOVABLE | TUNABLE
    flags = lambda names: ", ".join("--" + k.replace("_", "-") for k in sorted(names))
    if out is None:
        raise InputError("--resume needs --out, the run folder to continue")
    saved = {**new_flags, **saved_state(out)["config"]}  # read only: the folder is not locked yet
    critic = f" --critic-init {out}/checkpoint/critic" if has_critic(saved.get("algo")) else ""
    fixed = sorted(k for k in set(given) - movable if not same_value(k, given[k], saved))
    if fixed:
        more = f"; to train past its --steps, start a new run from it: --init {out}/checkpoint/actor{critic} " \
               f"--ref {saved['ref'] or saved['init']}" if "steps" in fixed else ""
        differ = ", ".join(f"--{k.replace('_', '-')} {flag_text(given[k])} (the run's: {flag_text(saved.get(k))})"
                           for k in fixed)
        raise InputError(f"--resume continues the saved run in --out; drop {differ}{more}")
    if set(saved) != fields:
        lacks, unknown = fields - set(saved), set(saved) - fields
        differ = "; ".join(([f"its config lacks {flags(lacks)}"] if lacks else []) +
                           ([f"has {flags(unknown)}"] if unknown else []))
        added = " (a flag added to the code since: give it an entry in train_rl.NEW_FLAGS)" if lacks else ""
        raise InputError(f"{out}/checkpoint/state.json was written by another version of train_rl.py ({differ}); "
                         f"resume it with that version, or start a new run from its models: --init "
                         f"{out}/checkpoint/actor{critic}{added}")
    if "eval_data" in given and not (saved["eval_every"] and saved["eval_data"]):
        raise InputError("--resume --eval-data gives a moved held-out file's new place, but this run evaluates nothing "
                         "(--eval-every 0 or no --eval-data); drop it")
    cfg = {**saved, **{k: os.path.abspath(v) if k in INPUTS and v else v for k, v in given.items() if k in movable}}
    inputs = {"ref": cfg["ref"] or cfg["init"], "data": cfg["data"], "eval-data": cfg["eval_every"] and cfg["eval_data"]}
    for flag, path in inputs.items():
        if path and not os.path.exists(path):
            what = f"--{flag}" if flag != "ref" or cfg["ref"] else "reference (its --init)"
            raise InputError(f"the run's {what} {path} is gone; give its new place with --resume --{flag} PATH")
    try:
        device(cfg["device"])
    except argparse.ArgumentTypeError as e:
        raise InputError(f"the run's device {e}; give another --device with --resume") from None
    wrong = refusal(cfg)
    if wrong:  # edited by hand, say to train longer: "steps": "300" would fail only at the first step
        raise InputError(f"{out}/checkpoint/state.json: the run's config has {wrong}; write a value the flag takes")
    return cfg
