"""
What every script shares: safe file reading and writing, run folders that never lose work, checked flag
values, the device, and the learning-rate schedule.

Files. Every file is written atomically (a temp file in the same folder, fsynced, then a rename, fsynced
in its folder), so a crash, even a power cut, never leaves half a file. The exceptions are a run's log,
which grows a line per step (`append_jsonl`), and eval.py's progress file, which grows a chunk of responses
at a time; their readers accept a torn last line (`read_jsonl(torn_tail_ok=True)`). A folder of files (a
checkpoint) is written beside its final place and swapped in whole by `publish_dir`, which deletes the
last one only once the new one is on disk; a swap cut short by a crash is finished by `recover_dir`. A
failed read names the file, and the line for JSONL.

Errors a user can fix (a missing file, a malformed record, a flag out of range) raise `InputError`. Every
CLI's main() is wrapped in `@cli`, which turns them into one line, "error: ...", and exit status 2.
"""

import argparse
import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from decimal import Decimal

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file


class InputError(ValueError):
    """Something the user gave cannot be used; the message names it and, where there is one, the fix."""


DISK_FIXES = {  # what to do when the disk refuses a file: full, a quota, ulimit -f, read-only, no permission
    errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
    errno.EFBIG: "lift the file-size limit (ulimit -f)", errno.EROFS: "give a path on a writable file system",
    errno.EACCES: "fix its permissions or give another path", errno.EPERM: "fix its permissions or give another path",
}
_running = []  # the cli mains running, outermost first: demo.py runs the others' mains inside its own


MIN_TORCH = "2.6"  # as requirements.txt says


def cli(main=None, *, memory="lower --batch-size"):
    """Run a script's main() so that an InputError, a file the disk refused (full, read-only, no permission),
    or a GPU out of memory ends in one line on stderr and exit status 2. What a script had finished is on disk
    already (every file is written whole or not at all), so the advice is to fix the cause and run the command
    again; `memory` says how, for the script's flags: `@cli(memory="lower --lengths")`.
    A main run inside another's (the demo's stages) passes its errors up, for the outer one to word or print."""
    if main is None:  # @cli(memory=...)
        return functools.partial(cli, memory=memory)

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        if _running:
            return main(*args, **kwargs)
        _running.append(main)
        try:
            if torch.__version__ < MIN_TORCH:  # TorchVersion compares as a version: "2.13.0+cpu" > "2.6"
                raise InputError(f"torch {torch.__version__} is installed, and this code needs {MIN_TORCH} or newer "
                                 f"(fully_shard, SDPA's enable_gqa); install a newer torch")
            return main(*args, **kwargs)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except OSError as e:
            if e.errno not in DISK_FIXES:
                raise
            print(f"error: {e.filename or 'a write'}: {e.strerror}; {DISK_FIXES[e.errno]}, then run the same command "
                  "again (with --resume where the script takes it: what it had finished is kept)", file=sys.stderr)
            raise SystemExit(2) from None
        except torch.OutOfMemoryError as e:  # the first line: what was asked for, and what the GPU had free
            print(f"error: out of GPU memory ({str(e).splitlines()[0].strip()}); {memory}, then run the same command "
                  "again (with --resume where the script takes it: what it had finished is kept)", file=sys.stderr)
            raise SystemExit(2) from None
        except RuntimeError as e:  # under torchrun: a collective that failed because another process had stopped
            if not lost_a_process(e):
                raise
            print(f"error: process {torch.distributed.get_rank()}: another process of this torchrun run stopped "
                  f"({str(e).splitlines()[0].strip()[:200]}); the cause is that process's own error above, or, if it "
                  "was killed, torchrun's summary below (Root Cause)", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:  # a second Ctrl-C (the first one stops a run cleanly), or a script without a plan
            print("stopped (Ctrl-C)", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            _running.pop()

    return wrapped


# Words for a dead peer: gloo's, and NCCL's ncclRemoteError. Not any DistError: a store timeout or an NCCL error of
# this process's own is its own cause, and its traceback is the evidence.
PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "remote process exited")


def lost_a_process(e):
    """Whether exception e is a collective's failure because another process of the group stopped (its own error
    says why, once): a multi-screen traceback of this process would bury that one line."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    return any(words in str(e) for words in PEER_LOST)


def cannot_create(path, e):
    """Why os.makedirs(path) failed, in words: a file on the way is named, else the OS's reason."""
    parent = path
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return f"{parent} is a file" if parent and not os.path.isdir(parent) else e.strerror


class HelpFormatter(argparse.HelpFormatter):
    """States each flag's default once, after its help text; a text that already says it is left alone, and a
    switch that takes no value (--quick, --no-baseline) has none to state."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS
        if not unset and "default" not in text:
            text += " (default: %(default)s)"
        return text

    def _get_default_metavar_for_optional(self, action):
        return "{true,false}" if action.type is bool_flag else super()._get_default_metavar_for_optional(action)


class Parser(argparse.ArgumentParser):
    """argparse that answers a bad flag with one line (not the whole usage) and points to --help."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def given(self, argv):
        """{dest: value} of the flags argv sets explicitly. argparse fills in a default only where the namespace
        lacks the name, so a namespace holding a placeholder for every flag keeps it for the flags not given
        (and --help, which exits during this parse, still shows every default)."""
        unset = object()
        namespace = self.parse_args(argv, argparse.Namespace(**{a.dest: unset for a in self._actions}))
        return {name: value for name, value in vars(namespace).items() if value is not unset}

    def refusal(self, values):
        """Why one of `values` ({dest: value}: a config saved as JSON, maybe edited by hand) is not a value its flag
        could have given, or None. Each is parsed again from its text and must come back the same: "300" for
        --steps does not (the run would fail at its first step), nor does -1 for --actor-lr."""
        for action in self._actions:
            value, flag = values.get(action.dest), (action.option_strings or [action.dest])[0]
            if value is None and action.dest in values and action.default is not None:
                return f"{flag} null: expected a value (its default is {action.default!r})"
            if value is None or (action.type is None and action.choices is None):
                continue
            if isinstance(action.nargs, int) and not (isinstance(value, list) and len(value) == action.nargs):
                return f"{flag} {value!r}: expected a list of {action.nargs} values"
            for item in value if isinstance(action.nargs, int) else [value]:
                text = ",".join(map(str, item)) if isinstance(item, list) else str(item)  # lists: "4,5" (--levels)
                try:
                    parsed = action.type(text) if action.type else text
                except (argparse.ArgumentTypeError, ValueError) as e:
                    return f"{flag} {value!r}: {e}"
                if parsed != item:
                    return f"{flag} {value!r}: {flag} {text} gives {parsed!r}"
                if action.choices is not None and item not in action.choices:
                    return f"{flag} {value!r}: expected one of {', '.join(map(str, action.choices))}"
        return None


# ----------------------------------------------------------------------------------------------------
# Flag values: argparse `type=` functions; each names the allowed range when it refuses a value.


def _number(kind, text):
    try:
        x = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
    if kind is float and not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return x


def ranged(kind, low=None, high=None, low_open=False, high_open=False):
    """A `type=` that parses an int or float and refuses values outside [low, high] (or open ends)."""
    lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
    hi = "" if high is None else f"{high}" + (")" if high_open else "]")
    where = {("", ""): "", ("", hi): f"<= {high}" if not high_open else f"< {high}",
             (lo, ""): f">= {low}" if not low_open else f"> {low}"}.get((lo, hi), f"in {lo}, {hi}")

    def parse(text):
        x = _number(kind, text)
        too_low = low is not None and (x <= low if low_open else x < low)
        too_high = high is not None and (x >= high if high_open else x > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {where}, got {text}")
        return x

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


positive_int = ranged(int, 1)
non_negative_int = ranged(int, 0)
positive_float = ranged(float, 0, low_open=True)
non_negative_float = ranged(float, 0)
fraction = ranged(float, 0, 1)  # [0, 1]
probability = ranged(float, 0, 1, low_open=True)  # (0, 1]: top-p
seed_int = ranged(int, 0, 2**31 - 1)  # a --seed that the scripts' generators take, combined with step numbers


def repeated(items):
    """The first item that stands twice in `items`, or None: names that key a table or a legend must not."""
    return next((x for i, x in enumerate(items) if x in items[:i]), None)

# Below this a temperature samples almost as greedy does, and far below it (about 1e-37) logits / temperature
# overflow float32, which made NaN log-probs. 0 means greedy.
MIN_TEMPERATURE = 1e-3
sampling_temperature = ranged(float, MIN_TEMPERATURE)  # training and selection sample: above 0


def temperature_ok(x):
    """Whether sampling can use temperature x: 0 (greedy), or a finite number of at least MIN_TEMPERATURE."""
    return x == 0 or MIN_TEMPERATURE <= x < math.inf


def temperature(text):
    """A `type=` for --temperature where 0 (greedy) is allowed (temperature_ok)."""
    x = _number(float, text)
    if not temperature_ok(x):
        raise argparse.ArgumentTypeError(f"must be 0 (greedy) or >= {MIN_TEMPERATURE}, got {text}")
    return x


def bool_flag(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def int_list(text):
    """ "4,5" -> [4, 5]: a comma-separated list of integers (levels)."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 4,5, got {text!r}")
    return values


def positive_int_list(text):
    """ "1,16,64" -> [1, 16, 64]: a comma-separated list of integers >= 1 (sizes, lengths)."""
    values = int_list(text)
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def choice_list(*choices):
    """A `type=` for a comma-separated list of names from `choices`: "eager,graph" -> ["eager", "graph"]."""

    def parse(text):
        unknown = [x for x in text.split(",") if x not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown[0]!r}: expected a comma-separated list of "
                                             f"{', '.join(choices)}")
        return text.split(",")

    return parse


def device(name):
    """A torch device name that exists here: "auto" is cuda when a GPU is visible, else cpu."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{name}: no CUDA GPU is visible to torch here; use --device cpu")
    if kind not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {name!r}")
    return name


# ----------------------------------------------------------------------------------------------------
# Reading


def no_such(path, what):
    """The error for a path that is not the file it should be: missing, or a folder."""
    return InputError(f"{path} is a folder, not a {what}" if os.path.isdir(path) else f"{path}: no such {what}")


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def lfs_pointer_error(path):
    """An InputError if `path` is a git-lfs pointer file (what `git clone` leaves without git-lfs), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER))
    except OSError:
        return None
    if head != LFS_POINTER:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    return InputError(f"{path} is a git-lfs pointer ({os.path.getsize(path)} bytes), not the file itself: the folder "
                      f"was cloned without git-lfs; run `git lfs install && git lfs pull` in {folder} (or download the "
                      "model with `huggingface-cli download`)")


def read_json(path, what="file"):
    if not os.path.isfile(path):
        raise no_such(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise lfs_pointer_error(path) or InputError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to read") from None


def read_jsonl(path, what="file", torn_tail_ok=False, parse_float=float):
    """[(where, record)] of a JSONL file, where = "path:line". Blank lines are skipped.

    torn_tail_ok: drop a last line that does not parse and has no newline (a write cut off by a crash).
    parse_float: how JSON numbers with a fraction or exponent are read (Decimal keeps them as written).
    """
    if not os.path.isfile(path):
        raise no_such(path, what)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    records = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8-sig" if n == 1 else "utf-8")  # a byte-order mark, as Windows tools write
            records.append((f"{path}:{n}", json.loads(text, parse_float=parse_float)))
        except UnicodeDecodeError:
            raise InputError(f"{path}:{n}: not UTF-8 text; save the file as UTF-8") from None
        except RecursionError:
            raise InputError(f"{path}:{n}: JSON nested too deeply to read") from None
        except ValueError as e:  # JSONDecodeError, or an integer of more digits than Python converts
            if torn_tail_ok and n == len(lines):
                break
            raise InputError(f"{path}:{n}: not valid JSON ({getattr(e, 'msg', e)})") from None
    return records


def decimal_text(x):
    """A JSON number read as Decimal, written without an exponent: 1e-05 -> "0.00001", 2.50 -> "2.50".
    An exponent beyond +-1000 stays (1E+100000000 written out would be a 100 MB string)."""
    if isinstance(x, Decimal) and x.is_finite() and abs(x.as_tuple().exponent) <= 1000:
        return format(x, "f")
    return str(x)


def sha256_of(obj):
    """A SHA-256 of a JSON-able object's content (dict keys in any order): what says two are the same."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------------
# Writing: a temp file beside the target, then one rename.


def fsync_path(path):
    """Wait until a file's data, or a folder's list of names, is on disk (not only in the page cache: a
    power cut or a stopped VM loses what is not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write, mode="w"):
    """Write file `path` whole or not at all: write(f) fills a temp file beside it (mode "wb": a binary one)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_path(folder)  # the rename


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text))


def finite(obj):
    """obj with each non-finite float (NaN, inf) as None: JSON has no NaN, and strict readers refuse the NaN
    Python's json writes (a step's explained_variance when its returns do not vary, a skipped step's loss)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(obj, path):
    write_text(path, json.dumps(finite(obj), indent=2, allow_nan=False) + "\n")


def write_jsonl(records, path):
    write_text(path, "".join(json.dumps(finite(r), ensure_ascii=False, allow_nan=False) + "\n" for r in records))


def append_jsonl(path, *records):
    """Add records to a JSONL file, one line each, on disk when this returns."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(finite(r), allow_nan=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def save_safetensors(tensors, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        save_file(tensors, tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # the library makes it 0600: readable as the json files beside it are
        fsync_path(tmp)
    except SafetensorError as e:  # its I/O errors (a full disk) are not OSErrors; callers handle OSError
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise OSError(f"writing {path}: {e}") from None
    os.replace(tmp, path)
    fsync_path(folder)  # the rename


# What a checkpoint or run folder (one holding config.json or state.json) is made of: an --out never replaces these.
CHECKPOINT_FILES = ("config.json", "state.json", "log.jsonl", "generation_config.json", "vocab.json", "merges.txt")
CHECKPOINT_SUFFIXES = (".safetensors", ".safetensors.index.json", "tokenizer.json", "tokenizer_config.json")


def run_holding(path):
    """The train_rl.py run folder (its --out) that `path` is or is inside, else None: a run's saves replace what is
    in its checkpoint/, and --resume refuses a folder holding files the run did not write."""
    path = os.path.abspath(path)
    while True:
        if os.path.isfile(os.path.join(path, "log.jsonl")) and os.path.isdir(os.path.join(path, "checkpoint")):
            return path
        if os.path.dirname(path) == path:
            return None
        path = os.path.dirname(path)


def check_outside_run(path, flag="--out", what="path"):
    """Refuse an output `path` (a file or a folder) inside a train_rl.py run folder (run_holding)."""
    if run := run_holding(path):
        raise InputError(f"{flag} {path} is inside the train_rl.py run folder {run}: its next save deletes what is in "
                         f"its checkpoint/, and --resume refuses files the run did not write; give a {what} outside it")


def check_writable(path, inputs=()):
    """Refuse, before any work, an output file path that cannot be written (a folder, a missing parent
    that cannot be made, no permission), that is one of the files it is made from, `inputs`: (flag, path),
    or that is a file of a checkpoint or run folder (eval.py --out ckpt/config.json would destroy it)."""
    if not path:
        raise InputError("--out is empty; give a file path")
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder; give a file path")
    for flag, given in inputs:
        if os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given):
            raise InputError(f"--out {path} is the {flag} file: writing it would destroy the input; give another --out")
    folder, name = os.path.split(os.path.abspath(path))
    holds_a_model = any(os.path.isfile(os.path.join(folder, f)) for f in ("config.json", "state.json"))
    if holds_a_model and (name in CHECKPOINT_FILES or name.endswith(CHECKPOINT_SUFFIXES)):
        raise InputError(f"--out {path} is a file of the checkpoint or run in {folder}: writing it would destroy "
                         "it; give another --out")
    check_outside_run(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise InputError(f"{path}: cannot create its folder ({cannot_create(folder, e)})") from None
    try:  # what writing it will do: a temp file in its folder (os.access passes /proc and other folders, as root)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", suffix=".probe"):
            pass
    except OSError as e:
        raise InputError(f"{path}: cannot write a file in {folder} ({e.strerror})") from None


# ----------------------------------------------------------------------------------------------------
# Folders swapped in whole. A complete temp folder carries a marker file; the swap is two renames
# (final -> final.old, final.tmp -> final), and recover_dir finishes a swap that a crash cut short.

COMPLETE = ".complete"


def publish_dir(tmp_dir, final_dir):
    """Replace folder `final_dir` by the fully written `tmp_dir`; the old one survives until the new one is
    on disk (its files were, as written; its folders' lists of names and the swap itself are made so here)."""
    for folder, _, _ in os.walk(tmp_dir):
        fsync_path(folder)
    write_text(os.path.join(tmp_dir, COMPLETE), "")
    old = f"{final_dir}.old"
    if os.path.exists(old):
        shutil.rmtree(old)
    if os.path.exists(final_dir):
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    fsync_path(os.path.dirname(os.path.abspath(final_dir)))
    if os.path.exists(old):
        shutil.rmtree(old)


def folder_bytes(path):
    """Bytes of the files under `path` (0 if it does not exist)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def newest_dir(final_dir):
    """The folder that recover_dir(final_dir) makes `final_dir`, changing nothing (a reader that holds no lock)."""
    tmp, old = f"{final_dir}.tmp", f"{final_dir}.old"
    if not os.path.exists(final_dir):
        if os.path.isfile(os.path.join(tmp, COMPLETE)):
            return tmp
        if os.path.isdir(old):
            return old
    return final_dir


def recover_dir(final_dir):
    """Finish or undo a publish_dir that was cut short, so `final_dir` holds the newest complete folder.

    A complete final.tmp wins when final is missing (the crash came between the two renames); otherwise a
    leftover final.old is put back; an incomplete final.tmp (a crash while writing it) is removed."""
    tmp, old = f"{final_dir}.tmp", f"{final_dir}.old"
    newest = newest_dir(final_dir)
    if newest != final_dir:
        os.replace(newest, final_dir)
    for leftover in (tmp, old):
        if os.path.exists(leftover):
            shutil.rmtree(leftover)


# ----------------------------------------------------------------------------------------------------
# Run folders: one writer at a time, and nothing deleted that a run did not make.


def check_out_folder(folder, owned, resume=False, overwrite=False, what="run",
                     fix="continue it with --resume, or replace it with --overwrite", again="--resume again"):
    """Refuse to write into `folder` unless that is safe; returns the earlier run's names there that overwrite
    replaces, for the caller to remove (remove_names) once the new run's inputs are checked.

    owned: {name: None for a file a run writes there, or the `owned` of a folder it writes} (foreign_files).
    again: how the command that continues it is run, for the advice on a folder holding files of another's.
    A new run needs a missing or empty folder (else `fix` is the advice); overwrite lets it replace a folder
    that holds only an earlier run's files; resume continues one. Files a run did not write are never
    deleted: a folder holding any is refused.
    """
    if not folder:  # os.path.join("", name) is name: the files would land in the current folder, over its own
        raise InputError("--out is empty; give a folder path")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"--out {folder} is a file, not a folder")
    present = sorted(set(os.listdir(folder)) - {".lock", COMPLETE}) if os.path.isdir(folder) else []
    others = foreign_files(folder, owned) if present else []
    if others:
        listed = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        fix_it = f"move them out of it, then {again}" if resume else "move them out, or pick an empty or new --out"
        raise InputError(f"--out {folder} holds files that are not a {what}'s ({listed}); {fix_it}")
    if resume or not present:
        return []
    if not overwrite:
        raise InputError(f"--out {folder} already holds a {what}; {fix}")
    return present


SAFETENSORS_TEMP = re.compile(r"\.tmp[A-Za-z0-9_]{6}")  # the temp file the safetensors library writes through


NOT_OWNED = object()  # foreign_files: a name `owned` does not list


def foreign_files(folder, owned, saving=False):
    """The paths in `folder` a run did not write there. A run writes each name of `owned` (and the .lock and
    COMPLETE markers; a key may be a pattern, re.compile(...), for names such as step-50): a file also as its
    temp copy, name.tmp<digits> (atomic_write); a folder also as name.tmp or name.old (publish_dir), holding only
    what `owned` gives it, and inside a save (name.tmp), cut short or in progress, the safetensors library's
    own temp files (.tmpXXXXXX), which a kill leaves half-written; recover_dir deletes an unfinished save. A
    symlink is never a run's."""
    def entry(name):  # owned's value for this name, or NOT_OWNED
        if name in owned:
            return owned[name]
        return next((v for k, v in owned.items() if isinstance(k, re.Pattern) and k.fullmatch(name)), NOT_OWNED)

    others = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.islink(path):
            others.append(name)
        elif not os.path.isdir(path):
            base = re.sub(r"\.tmp\d+$", "", name)
            ours = base in (".lock", COMPLETE) or entry(base) is None or saving and SAFETENSORS_TEMP.fullmatch(name)
            if not ours:
                others.append(name)
        else:
            inner = entry(name)
            inside = saving or inner is NOT_OWNED and name.endswith(".tmp")
            if inner is NOT_OWNED:
                inner = entry(re.sub(r"\.(tmp|old)$", "", name))
            others += [os.path.join(name, n) for n in foreign_files(path, inner, inside)] if isinstance(inner, dict) \
                else [name]
    return others


def remove_names(folder, names):
    """Delete these files and folders of `folder` (an earlier run's, as check_out_folder returns them)."""
    for name in names:
        path = os.path.join(folder, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)


class FolderLock:
    """An exclusive lock on `folder/.lock` while this process lives (the OS drops it when the process dies,
    however it dies), so two runs never write one folder."""

    def __init__(self, folder):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise InputError(f"--out {folder} is a file, not a folder")
        self.folder, self.path = folder, os.path.join(folder, ".lock")
        self.made_folder = not os.path.exists(folder)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:  # an empty path, a file on the way, no permission
            raise InputError(f"--out {folder!r}: cannot create the folder ({cannot_create(folder, e)}); give another "
                             "--out") from None
        self.made_lock = not os.path.exists(self.path)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise InputError(f"{folder} is in use by {lock_holder(folder)}; wait for it to finish or pick another "
                             "--out") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()}")
        self.file.flush()

    def release(self, refused=False):
        """Unlock. The .lock file goes too if this lock made it and the folder was refused or got nothing else
        (a run that failed before writing), and so does the folder if this lock made it: a refused or failed
        command leaves no trace."""
        if self.made_lock and (refused or os.listdir(self.folder) == [".lock"]):
            os.remove(self.path)  # while still locked: no other process can have taken it meanwhile
            if self.made_folder and not os.listdir(self.folder):
                os.rmdir(self.folder)
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def lock_holder(folder):
    """'process N' holding folder's FolderLock, or None if nobody holds it (nothing is created or changed)."""
    try:
        with open(os.path.join(folder, ".lock")) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return f.read().strip() or "another process"
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:  # no .lock: never locked
        pass
    return None


REPEAT_WINDOW = 2.0  # seconds within which a second SIGTERM is the first one delivered twice (StopRequest)


def torchrun_reads_timeout():
    """Whether this torch's torchrun reads TORCH_ELASTIC_SHUTDOWN_TIMEOUT (added in 2026; before it, 30 s fixed)."""
    from torch.distributed.launcher.api import LaunchConfig
    return "shutdown_timeout" in LaunchConfig.__dataclass_fields__


def torchrun_stop_timeout():
    """The seconds torchrun lets its processes finish after it passes a Ctrl-C or SIGTERM on to them, before it
    kills them (PET_SHUTDOWN_TIMEOUT, the variable of torchrun's --shutdown-timeout, else
    TORCH_ELASTIC_SHUTDOWN_TIMEOUT: the processes inherit both; 30 by default); None without torchrun. The flag
    itself does not reach the processes: given, it holds instead of what this says."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    if not torchrun_reads_timeout():
        return 30.0
    try:
        return float(os.environ.get("PET_SHUTDOWN_TIMEOUT") or os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", 30))
    except ValueError:
        return 30.0


class StopRequest:
    """Ctrl-C (or SIGTERM) once: finish the current step, save, exit. Ctrl-C twice: exit at once, after printing
    what `kept()` says (what was saved before). A SIGTERM within REPEAT_WINDOW of the first stop signal is that
    stop delivered twice, not a second request: a scheduler that signals every process of a job, with torchrun
    passing its own signal on to its processes, delivers two. (After a Ctrl-C, a SIGTERM is torchrun's answer to a
    second Ctrl-C, and quits.) A context manager: the handlers that were there
    before come back when the `with` block ends."""

    def __init__(self, kept=None):
        self.kept = kept

    def __enter__(self):
        self.requested = False
        self.previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum, frame):
        now = time.monotonic()
        if self.requested and signum == self.first == signal.SIGTERM and now - self.first_at < REPEAT_WINDOW:
            return  # the same stop, delivered twice
        if self.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if self.kept:
                print(f"\nquitting without saving: {self.kept()}", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        self.requested, self.first, self.first_at = True, signum, now
        if os.environ.get("RANK", "0") != "0":  # under torchrun every process gets the stop: process 0 says it
            return
        deadline = torchrun_stop_timeout()
        late = "" if deadline is None else f"; torchrun kills the processes {deadline:g} s after passing a stop on: " \
            "a step not saved by then is lost, the last checkpoint kept"
        print(f"\nstop requested: finishing this step, then saving (Ctrl-C again to quit without saving){late}",
              flush=True)


@contextlib.contextmanager
def timed(times, name):
    """times[name] = the seconds the `with` block took, its GPU work included (the GPU runs behind Python: without
    the wait, work launched in one stage would be timed in the next)."""
    gpu = torch.cuda.is_initialized()
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    yield
    if gpu:
        torch.cuda.synchronize()
    times[name] = time.perf_counter() - start


# ----------------------------------------------------------------------------------------------------
# Algorithms and schedules


def has_critic(algo):
    """Whether --algo `algo` trains a critic (and so loads, saves and reports one): PPO does, GRPO does not. An
    algorithm added to train_rl.py's --algo is critic-free unless it is named here."""
    return algo == "ppo"


def lr_at(step, total, peak, warmup_steps, min_ratio):
    """Linear warm-up over warmup_steps to `peak`, then cosine decay to min_ratio * peak at step `total`."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
