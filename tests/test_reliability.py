"""Runs never lose work, and every bad value gets one line: flags, data files, checkpoints, run folders.

Each case names what a user typed or gave, and the words of the one-line error it must get (exit status 2,
no traceback). The run-folder cases check that nothing finished is lost or overwritten."""

import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import SafetensorError

import common
import demo
import memory
import eval as evaluation
import sample
import select_problems
import runs
import train_rl
import train_sft
import bench
import gpu_check
import tokenizer
from common import FolderLock, InputError, check_out_folder, publish_dir, recover_dir
from model import GPT, GPTConfig
from tasks import prompt_text, read_problems

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_line_error(main, argv, capsys):
    """Run a CLI that must refuse argv: returns its single stderr line."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------------------------------
# Flag values, checked where they are parsed


@pytest.fixture
def rl_flags(half_right, tmp_path):
    return ["--init", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(tmp_path / "run")]


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["--samples-per-prompt", "0"], "argument --samples-per-prompt: must be >= 1"),
    (["--prompts-per-step", "0"], "argument --prompts-per-step: must be >= 1"),
    (["--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1"),
    (["--actor-lr", "nan"], "argument --actor-lr: expected a finite number, got 'nan'"),
    (["--critic-lr=-1e-5"], "argument --critic-lr: must be > 0"),
    (["--micro-batch", "0"], "argument --micro-batch: must be >= 1"),
    (["--minibatches", "0"], "argument --minibatches: must be >= 1"),
    (["--ppo-epochs", "0"], "argument --ppo-epochs: must be >= 1"),
    (["--save-every", "0"], "argument --save-every: must be >= 1"),
    (["--sample-batch", "0"], "argument --sample-batch: must be >= 1"),
    (["--levels", "a,b"], "argument --levels: expected comma-separated integers"),
    (["--adam-betas", "2", "2"], "argument --adam-betas: must be in [0, 1)"),
    (["--adam-betas", "0.9", "1"], "argument --adam-betas: must be in [0, 1), got 1"),  # beta2 = 1: Adam divides by 0
    (["--gamma", "2"], "argument --gamma: must be in [0, 1]"),
    (["--gae-lambda", "-0.5"], "argument --gae-lambda: must be in [0, 1]"),
    (["--clip-eps", "-0.2"], "argument --clip-eps: must be in (0, 1), got -0.2"),
    (["--clip-eps", "1"], "argument --clip-eps: must be in (0, 1), got 1"),  # 1 - eps = 0: no lower clip left
    (["--kl-coef", "-1"], "argument --kl-coef: must be in [0, 1000000.0], got -1"),
    (["--temperature", "-1"], "argument --temperature: must be >= 0.001"),
    (["--temperature", "0"], "argument --temperature: must be >= 0.001"),
    (["--temperature", "1e-40"], "argument --temperature: must be >= 0.001"),  # logits / 1e-40 overflow: NaN
    (["--eval-problems", "x"], "argument --eval-problems: expected an integer, got 'x'"),
    (["--loss-agg", "sum"], "argument --loss-agg: invalid choice"),
    (["--minibatches", "100"], "--minibatches (100) exceeds a step's 64 responses"),
    (["--algo", "grpo", "--kl-estimator", "k1"], "use --kl-estimator k3"),
    (["--algo", "grpo", "--samples-per-prompt", "1"], "needs --samples-per-prompt of 2 or more"),
    (["--critic-warmup-steps", "5", "--steps", "5"], "leaves no step for the actor"),
    (["--eval-every", "5"], "--eval-every needs --eval-data"),
    (["--keep-every", "10", "--save-every", "4"], "--keep-every (10) keeps the actor of a checkpoint, so it must be a "
     "multiple of --save-every (4)"),
    (["--keep-every", "-1"], "argument --keep-every: must be >= 0"),
    (["--resume", "--actor-lr", "1e-3"], "no such checkpoint (nothing to resume; start without --resume)"),
    (["--gpu-mem", "80"], "--gpu-mem only goes with --dry-run"),
    (["--resume", "--overwrite"], "--overwrite replaces it: give one of them"),
])
def test_train_rl_refuses_bad_values(rl_flags, capsys, flags, message):
    assert message in one_line_error(train_rl.main, rl_flags + flags, capsys)


def test_train_rl_needs_its_paths(capsys, half_right):
    assert "--init is required" in one_line_error(train_rl.main, ["--data", "x", "--out", "y"], capsys)
    missing = one_line_error(train_rl.main, ["--init", "nowhere", "--data", "x", "--out", "y"], capsys)
    assert "nowhere: no such checkpoint folder" in missing


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("main, argv", [
    (train_rl.main, ["--device", "cuda"]),
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--device", "cuda"]),
    (select_problems.main, ["--ckpt", "x", "--data", "y", "--out", "z", "--device", "cuda:1"]),
    (sample.main, ["--ckpt", "x", "--prompt", "1", "--device", "cuda"]),
])
def test_device_cuda_without_a_gpu(capsys, main, argv):
    assert "no CUDA GPU is visible to torch here; use --device cpu" in one_line_error(main, argv, capsys)


@pytest.mark.parametrize("main, argv, message", [
    (sample.main, ["--ckpt", "x", "--prompt", "1", "--top-k", "0"], "argument --top-k: must be >= 1"),
    (sample.main, ["--ckpt", "x", "--prompt", "1", "--top-p", "0"], "argument --top-p: must be in (0, 1]"),
    (sample.main, ["--ckpt", "x", "--prompt", "1", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (sample.main, ["--ckpt", "x", "--prompt", "1", "--temperature", "-1"], "argument --temperature: must be 0 (greedy) "
                                                                          "or >= 0.001, got -1"),
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--temperature", "1e-40"], "argument --temperature: must be 0 "
                                                                               "(greedy) or >= 0.001, got 1e-40"),
    (select_problems.main, ["--ckpt", "x", "--data", "y", "--out", "z", "--temperature", "0"],
     "argument --temperature: must be >= 0.001"),
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--top-p", "0"], "argument --top-p: must be in (0, 1]"),
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--samples", "0"], "argument --samples: must be >= 1"),
    (select_problems.main, ["--ckpt", "x", "--data", "y", "--out", "z", "--min-pass-rate", "0.8",
                            "--max-pass-rate", "0.2"], "--min-pass-rate (0.8) must be below --max-pass-rate (0.2)"),
    (train_sft.main, ["--level-weights", "1,2"], "argument --level-weights: needs 5 non-negative numbers"),
    (train_sft.main, ["--n-embd", "100", "--n-head", "3"], "--n-embd (100) must be a multiple of --n-head (3)"),
    (demo.main, ["--base", "nowhere"], "no model at nowhere; train one with: python train_sft.py"),
])
def test_other_clis_refuse_bad_values(capsys, main, argv, message):
    assert message in one_line_error(main, argv, capsys)


def test_quick_demo_without_its_shipped_phase1_model_names_a_fix_that_works(capsys, monkeypatch, tmp_path):
    """The advice was `python train_sft.py --out checkpoints/toy-phase1`: that makes a base model with no
    phase2_set.jsonl, and --quick then failed on the missing set. It must point at the shipped folder instead."""
    monkeypatch.setattr(demo, "PHASE1", str(tmp_path / "toy-phase1"))
    err = one_line_error(demo.main, ["--quick", "--out", str(tmp_path / "out")], capsys)
    assert "train_sft.py" not in err and "git checkout -- checkpoints/toy-phase1" in err
    train_sft.main(["--out", str(tmp_path / "toy-phase1"), "--steps", "1", "--probe-every", "0"])  # the old advice
    capsys.readouterr()
    err = one_line_error(demo.main, ["--quick", "--out", str(tmp_path / "out")], capsys)
    assert "phase2_set.jsonl" in err and "git checkout" in err and not os.path.exists(tmp_path / "out")


def test_a_torch_older_than_the_code_needs_is_refused_in_one_line(capsys, monkeypatch):
    """On torch 2.4 a GQA model (R1-Distill) crashed at its first attention (no enable_gqa), and a torchrun
    run at its import of fully_shard."""
    from torch.torch_version import TorchVersion
    monkeypatch.setattr(torch, "__version__", TorchVersion("2.5.1+cu124"))
    err = one_line_error(evaluation.main, ["--ckpt", "x", "--data", "y"], capsys)
    assert err == "error: torch 2.5.1+cu124 is installed, and this code needs 2.6 or newer (fully_shard, SDPA's " \
                  "enable_gqa); install a newer torch"
    monkeypatch.setattr(torch, "__version__", TorchVersion("2.10.0"))  # not "2.10" < "2.6" as text
    assert "no such" in one_line_error(evaluation.main, ["--ckpt", "x", "--data", "y"], capsys)


def test_plots_refuses_what_it_cannot_plot_in_one_line(half_right, tmp_path, capsys):
    import plots

    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "other.jsonl").write_text('{"x": 1}\n')
    (tmp_path / "a_file").write_text("x")
    for argv, message in [
        (["--logs", str(tmp_path / "empty.jsonl")], "empty.jsonl: no step logged yet"),  # IndexError
        (["--logs", str(tmp_path / "other.jsonl")], "other.jsonl:1: not a train_rl.py log record"),  # KeyError
        (["--results", str(half_right / "config.json")], "config.json: not a demo results file (no 'runs' field)"),
        (["--logs", str(tmp_path / "other.jsonl"), "--out-dir", str(tmp_path / "a_file")],
         f"--out-dir {tmp_path / 'a_file'}: cannot create it ({tmp_path / 'a_file'} is a file)"),  # FileExistsError
        ([], "nothing to plot: give --logs, --results or both"),  # exit 0, nothing written
        (["--logs", str(tmp_path / "other.jsonl"), "--names", "a", "b"], "--names gives 2 names for 1 --logs"),
    ]:
        assert message in one_line_error(plots.main, argv, capsys), argv


def test_an_unwritable_out_is_refused_before_any_work(half_right, tmp_path, capsys):
    argv = ["--ckpt", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(tmp_path)]
    assert f"{tmp_path} is a folder; give a file path" in one_line_error(evaluation.main, argv, capsys)
    # /proc passes os.access(W_OK) for root, yet holds no new file: the write failed only after the sampling
    err = one_line_error(evaluation.main, [*argv[:-1], "/proc/results.json"], capsys)
    assert "/proc/results.json: cannot write a file in /proc" in err
    common.check_writable(str(tmp_path / "new" / "results.json"))
    assert os.listdir(tmp_path / "new") == []  # the write probe leaves nothing behind
    err = one_line_error(demo.main, ["--quick", "--out", "/proc/demo"], capsys)  # was a FileNotFoundError traceback
    assert "/proc/demo/demo.json: cannot create its folder" in err


@pytest.mark.parametrize("main, name", [(evaluation.main, "config.json"), (select_problems.main, "model.safetensors")])
def test_an_out_that_is_a_checkpoint_file_is_refused(half_right, capsys, main, name):
    before = (half_right / name).read_bytes()
    argv = ["--ckpt", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(half_right / name)]
    err = one_line_error(main, argv, capsys)
    assert f"is a file of the checkpoint or run in {half_right}: writing it would destroy it" in err
    assert (half_right / name).read_bytes() == before  # eval.py wrote its results over config.json


# ---------------------------------------------------------------------------------------------------
# Data files


def problems_file(tmp_path, lines, raw=False):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(line if raw else line.encode() for line in lines) + b"\n")
    return str(path)


@pytest.mark.parametrize("lines, message", [
    (['{"id": 1, "problem": "a", "answer": "1"}', '{"id": "1", "problem": "b", "answer": "2"}'],
     "p.jsonl:2: id '1' already used at"),
    (['{"id": "x", "problem": "a", "answer": ""}'], "p.jsonl:1: empty 'answer'"),
    (['{"id": "x", "problem": "a", "answer": "  "}'], "p.jsonl:1: empty 'answer'"),
    (['{"id": "x", "problem": "a", "answer": [1]}'], "p.jsonl:1: 'answer' must be text or a number"),
    (['{"id": "x", "problem": "a", "answer": "1", "level": [1]}'], "p.jsonl:1: 'level' must be an integer"),
    (['{"id": "x", "problem": "a", "answer": "1", "level": "hard"}'], "p.jsonl:1: 'level' must be an integer"),
    (['{"id": "x", "problem": "a", "solution": "no box here"}'], "p.jsonl:1: no 'answer', and no \\boxed{}"),
])
def test_bad_records_are_refused_naming_file_and_line(tmp_path, lines, message):
    with pytest.raises(InputError) as e:
        read_problems(problems_file(tmp_path, lines))
    assert message in str(e.value)


def test_plots_reads_a_log_whose_last_line_a_crash_cut_off(tmp_path):
    """common.py: the log's readers accept a torn last line; plots.read_log refused it as not JSON."""
    import plots

    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"step": 0, "accuracy": 0.5, "length_mean": 9.0}) + "\n" + '{"step": 1, "accur')
    assert [r["step"] for r in plots.read_log(str(log))] == [0]


def test_only_a_last_line_cut_off_before_its_newline_counts_as_torn(tmp_path):
    """A crash cuts a write before its newline; a whole line that does not parse is damage, refused even last."""
    torn, bad = tmp_path / "torn.jsonl", tmp_path / "bad.jsonl"
    torn.write_text('{"a": 1}\n{"b": ')
    bad.write_text('{"a": 1}\n{bad}\n')
    assert [r for _, r in common.read_jsonl(torn, torn_tail_ok=True)] == [{"a": 1}]
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        common.read_jsonl(bad, torn_tail_ok=True)


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "state.json"
    common.write_text(path, "old")
    with pytest.raises(TypeError):
        common.write_text(path, 5)  # fails inside the write, after the temp file was opened
    assert os.listdir(tmp_path) == ["state.json"] and path.read_text() == "old"


def test_an_atomic_write_stopped_by_ctrl_c_leaves_the_old_file_and_no_temp_file(tmp_path):
    """A Ctrl-C (KeyboardInterrupt, not an Exception) inside the write: the temp file goes too."""
    path = tmp_path / "state.json"
    common.write_text(path, "old")

    def interrupted(f):
        f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        common.atomic_write(path, interrupted)
    assert os.listdir(tmp_path) == ["state.json"] and path.read_text() == "old"


def test_an_atomic_write_fsyncs_the_file_then_the_folder_that_renamed_it(tmp_path, monkeypatch):
    """A file written alone (config.json, eval.py's --out) is on disk when write_text returns: its data before
    the rename, and after it the folder's list of names (without that, a power cut can lose the new name)."""
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    common.write_text(tmp_path / "config.json", "{}")
    folder = os.path.realpath(tmp_path)
    assert synced == [f"{folder}/config.json.tmp{os.getpid()}", folder]


def test_json_files_hold_null_where_a_figure_is_not_finite(tmp_path):
    """Python's json wrote NaN and Infinity (a step's explained_variance when its returns do not vary, a
    skipped step's loss), which strict JSON readers refuse: null instead, nested too, finite values as they were."""
    rec = {"explained_variance": math.nan, "losses": [math.inf, -math.inf, 0.5], "nested": {"x": (math.nan, 1)}}
    strict = lambda text: json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a JSON file"))
    common.append_jsonl(tmp_path / "log.jsonl", rec, {"step": 1})
    common.write_jsonl([rec], tmp_path / "w.jsonl")
    common.write_json(rec, tmp_path / "state.json")
    want = {"explained_variance": None, "losses": [None, None, 0.5], "nested": {"x": [None, 1]}}
    assert [strict(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [want, {"step": 1}]
    assert strict((tmp_path / "w.jsonl").read_text()) == strict((tmp_path / "state.json").read_text()) == want


def test_non_utf8_lines_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"p.jsonl:2: not UTF-8 text"):
        read_problems(problems_file(tmp_path, [b'{"problem": "a", "answer": "1"}', b'{"problem": "\xff"}'], raw=True))


def test_answers_are_read_as_written_or_parsed(tmp_path):
    lines = ['{"id": "a", "problem": "p", "answer": 1e-05}', '{"id": "b", "problem": "p", "answer": 1e+21}',
             '{"id": "c", "problem": "p", "answer": 2.50}', '{"id": "d", "problem": "p", "answer": 29}',
             '{"id": "e", "problem": "p", "answer": "Natalia sold 48/2 = 24 clips.\\n#### 1,072"}',
             '{"id": "f", "problem": "p", "answer": 1E+100000000}']  # written out: a 100 MB string
    answers = [r["answer"] for r in read_problems(problems_file(tmp_path, lines))]
    assert answers == ["0.00001", "1000000000000000000000", "2.50", "29", "1072", "1E+100000000"]


def test_a_prompt_past_the_context_is_refused_before_any_work(half_right, tmp_path, capsys):
    data = problems_file(tmp_path, [json.dumps({"id": "long", "problem": "9" * 100_000, "answer": "1"})])
    argv = ["--init", str(half_right), "--data", data, "--out", str(tmp_path / "run"), "--critic-warmup-steps", "0"]
    err = one_line_error(train_rl.main, argv, capsys)
    assert "problem 'long': its prompt of 100007 tokens plus 320 new tokens exceeds the model's context of 64" in err
    assert not (tmp_path / "run" / "checkpoint").exists()


# ---------------------------------------------------------------------------------------------------
# Checkpoints and tokenizers


@pytest.mark.parametrize("config, message", [
    ([1, 2], "expected a JSON object, got list"),
    ({"n_embd": "128"}, "config.json: n_embd must be int, got '128'"),
    ({"n_layer": True}, "config.json: n_layer must be int, got True"),
])
def test_a_bad_config_json_gets_one_line(half_right, tmp_path, capsys, config, message):
    if isinstance(config, dict):  # one field changed in a real config
        config = {**json.loads((half_right / "config.json").read_text()), **config}
    (tmp_path / "config.json").write_text(json.dumps(config))
    argv = ["--ckpt", str(tmp_path), "--data", str(half_right / "problems.jsonl")]
    assert message in one_line_error(evaluation.main, argv, capsys)


def test_a_broken_tokenizer_file_gets_one_line(half_right, tmp_path, capsys):
    folder = tmp_path / "ckpt"
    GPT.from_pretrained(str(half_right)).save(str(folder))
    for text, message in [("{oops", "tokenizer_bytes.json: not valid JSON"), ("[1]", "unknown tokenizer kind")]:
        (folder / "tokenizer_bytes.json").write_text(text)
        err = one_line_error(sample.main, ["--ckpt", str(folder), "--prompt", "1"], capsys)
        assert message in err


# ---------------------------------------------------------------------------------------------------
# Damaged model folders, tokenizers and data files, and the developer tools' flags: one line each


def copy_of(half_right, tmp_path, name="ckpt"):
    folder = tmp_path / name
    shutil.copytree(half_right, folder)
    return folder


def sample_error(folder, capsys, *extra):
    return one_line_error(sample.main, ["--ckpt", str(folder), "--prompt", "3+4", "--device", "cpu", *extra], capsys)


def safetensors_bytes(header, data=b""):
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("name, content, message", [
    ("model.safetensors", b"\xff" * 100, "model.safetensors: not a safetensors file (100 bytes, too few for"),
    ("model.safetensors", safetensors_bytes([1]), "not a safetensors file (the header is a JSON list, not an object)"),
    ("model.safetensors", safetensors_bytes({"tok_emb.weight": {"dtype": "F32", "shape": [-1, 2],
                                                                "data_offsets": [0, 8]}}, b"x" * 8),
     "not a safetensors file (tensor 'tok_emb.weight': expected {dtype, shape, data_offsets}"),
    ("model.safetensors", safetensors_bytes({"tok_emb.weight": {"dtype": "F32", "shape": [2]}}, b"x" * 8),
     "not a safetensors file (tensor 'tok_emb.weight': expected"),
    ("model.safetensors", safetensors_bytes({"tok_emb.weight": "x"}), "got 'x')"),
    ("model.safetensors", safetensors_bytes({"tok_emb.weight": {"dtype": "F32", "shape": [10**9],
                                                                "data_offsets": [0, 4 * 10**9]}}),
     "tensor 'tok_emb.weight' is truncated"),
    ("model.safetensors.index.json", b"{}", "model.safetensors.index.json: not a safetensors index (expected"),
    ("model.safetensors.index.json", b'{"weight_map": 5}', "not a safetensors index (expected \"weight_map\""),
])
def test_a_damaged_weights_file_or_index_gets_one_line(half_right, tmp_path, capsys, name, content, message):
    folder = copy_of(half_right, tmp_path)
    (folder / name).write_bytes(content)
    assert message in sample_error(folder, capsys)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(norm_eps=float("nan")), "GPTConfig: unsupported norm_eps=nan"),  # sampled NUL bytes
    (lambda c: c.update(rope_theta=0), "GPTConfig: unsupported rope_theta=0"),
    (lambda c: c.update(model_type="qwen2", vocab_size=258, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=64, rope_scaling="linear"),
     "config.json: rope_parameters / rope_scaling must be an object, got 'linear'"),  # was an AttributeError
])
def test_a_config_that_would_emit_garbage_or_crash_gets_one_line(half_right, tmp_path, capsys, change, message):
    folder = copy_of(half_right, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    assert message in sample_error(folder, capsys)


def test_integer_weights_are_refused(half_right, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    folder = copy_of(half_right, tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v.to(torch.int32) for k, v in weights.items()}, str(folder / "model.safetensors"))
    assert "is torch.int32, not floating point: not a model's weights" in sample_error(folder, capsys)


def test_weights_that_overflow_to_nan_logits_are_refused_by_the_sampler(half_right, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    folder = copy_of(half_right, tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    weights["tok_emb.weight"] *= 1e30  # finite, so loading accepts it; the first layer norm's variance overflows
    save_file(weights, str(folder / "model.safetensors"))
    message = "the model's logits for the prompt are NaN or inf: its weights are damaged or too large"
    assert message in sample_error(folder, capsys, "--max-new-tokens", "8")  # printed NUL bytes, exit 0
    assert message in sample_error(folder, capsys, "--max-new-tokens", "8", "--sampler", "graph")
    data = str(half_right / "problems.jsonl")
    argv = ["--ckpt", str(folder), "--data", data, "--max-new-tokens", "8"]
    assert message in one_line_error(evaluation.main, argv, capsys)  # it reported 0.0 % and exit 0


def hf_tokenizer_folder(half_right, tmp_path, change):
    """A copy of the tiny model with a byte-level Hugging Face tokenizer (ids as the toy's) that `change` damages."""
    from tokenizer import byte_to_unicode

    folder = copy_of(half_right, tmp_path)
    tok = {"model": {"type": "BPE", "vocab": {c: b for b, c in byte_to_unicode().items()}, "merges": []},
           "added_tokens": [{"id": 256, "content": "<|endoftext|>", "special": True},
                            {"id": 257, "content": "<|pad|>", "special": True}],
           "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "decoder": {"type": "ByteLevel"}}
    config = {"eos_token": "<|endoftext|>", "pad_token": "<|pad|>", "chat_template": "{{ messages[0]['content'] }}"}
    change(tok, config)
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("change, message", [
    (lambda t, c: None, None),  # undamaged, it loads
    (lambda t, c: t["model"].pop("vocab"), "tokenizer.json: malformed (model.vocab must be an object"),
    (lambda t, c: t["model"].update(vocab=["a"]), "tokenizer.json: malformed (model.vocab must be an object"),
    (lambda t, c: t["added_tokens"][0].pop("content"), "tokenizer.json: malformed (added_tokens must be a list of"),
    (lambda t, c: t.update(added_tokens=5), "tokenizer.json: malformed (added_tokens must be a list of"),
    (lambda t, c: t["model"].update(merges=["a"]), "tokenizer.json: malformed (model.merges[0] must be"),
    (lambda t, c: t.update(pre_tokenizer="ByteLevel"), "tokenizer.json: malformed (pre_tokenizer must be an object"),
    (lambda t, c: t["pre_tokenizer"].update(type="Sequence", pretokenizers=["x", "y"]), "tokenizer.json: malformed ("),
    (lambda t, c: c.update(eos_token=5), "tokenizer_config.json: malformed (eos_token must be a string"),
    (lambda t, c: c.update(chat_template="{% if %}"), "tokenizer_config.json: the chat template has a syntax error"),
    (lambda t, c: c.update(chat_template=[{"name": "x"}]), "tokenizer_config.json: malformed (no field 'template')"),
    (lambda t, c: c.update(chat_template=5), "tokenizer_config.json: malformed (chat_template must be a string"),
])
def test_a_damaged_hugging_face_tokenizer_gets_one_line(half_right, tmp_path, capsys, change, message):
    folder = hf_tokenizer_folder(half_right, tmp_path, change)
    if message is None:
        assert sample.load_for_inference(str(folder))[1].encode("hi") == [104, 105]
    else:
        assert message in sample_error(folder, capsys, "--raw")
        assert message in one_line_error(tokenizer.main, ["--path", str(folder)], capsys)


def test_tokenizer_cli_errors_are_one_line(tmp_path, capsys):
    assert "expected tokenizer.json (Hugging Face) or tokenizer_bytes.json" in one_line_error(
        tokenizer.main, ["--path", str(tmp_path / "nowhere")], capsys)


def test_a_hugging_face_config_of_the_wrong_types_gets_one_line(half_right, tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "vocab_size": "258", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 64}))
    assert "config.json: vocab_size must be int, got '258'" in sample_error(tmp_path, capsys)


def test_tokenizer_ids_past_the_models_vocabulary_are_refused_by_every_loader(half_right, tmp_path, capsys):
    folder = tmp_path / "small"
    GPT(GPTConfig(vocab_size=200, n_layer=1, n_head=2, n_embd=16, n_inner=32, max_seq_len=64)).save(str(folder))
    tokenizer.Tokenizer.byte_level().save(str(folder))  # ids up to 257
    message = "the tokenizer's ids go up to 257, past the model's vocab_size of 200 (config.json)"
    data = str(half_right / "problems.jsonl")
    assert message in sample_error(folder, capsys)
    assert message in one_line_error(evaluation.main, ["--ckpt", str(folder), "--data", data], capsys)
    assert message in one_line_error(train_rl.main, ["--init", str(folder), "--data", data, "--out",
                                                     str(tmp_path / "run"), "--critic-warmup-steps", "0"], capsys)


def test_a_critic_or_a_run_folder_given_as_a_model_is_named(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 1))
    data = str(half_right / "problems.jsonl")
    critic, actor = out / "checkpoint" / "critic", out / "checkpoint" / "actor"
    wanted = f"is a critic (value-head) checkpoint, not a policy; give the actor beside it, {actor}"
    assert wanted in sample_error(critic, capsys)
    assert wanted in one_line_error(evaluation.main, ["--ckpt", str(critic), "--data", data], capsys)
    for folder, kind in [(out, "run"), (out / "checkpoint", "checkpoint")]:
        err = one_line_error(evaluation.main, ["--ckpt", str(folder), "--data", data], capsys)
        assert f"{folder} is a train_rl.py {kind} folder, not a model; its model is {actor}" in err


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_prompts_file_is_refused(half_right, tmp_path, capsys, text):
    (tmp_path / "p.jsonl").write_text(text)
    err = one_line_error(sample.main, ["--ckpt", str(half_right), "--prompts", str(tmp_path / "p.jsonl")], capsys)
    assert f"{tmp_path / 'p.jsonl'}: no prompts" in err


def test_an_integer_of_too_many_digits_is_a_malformed_line(tmp_path):
    with pytest.raises(InputError, match=r"p.jsonl:2: not valid JSON \(Exceeds the limit"):
        read_problems(problems_file(tmp_path, ['{"problem": "a", "answer": "1"}', '{"answer": ' + "9" * 5000 + "}"]))


@pytest.mark.parametrize("content, message", [
    ({}, "not a demo results file (no 'runs' field)"),
    ({"runs": []}, "not a demo results file ('runs' is empty)"),
    ([1], "not a demo results file ("),
    ({"runs": [{"seed": 0, "rows": {"base": {"accuracy": 1}}}]}, "not a demo results file (no 'levels' field)"),
])
def test_demo_report_of_another_file_gets_one_line(tmp_path, capsys, content, message):
    (tmp_path / "r.json").write_text(json.dumps(content))
    assert message in one_line_error(demo.main, ["--report", str(tmp_path / "r.json")], capsys)


def test_demo_report_of_the_shipped_results_still_prints(capsys):
    demo.main(["--report", os.path.join(REPO, "assets", "results.json")])
    assert "base -> phase1: accuracy" in capsys.readouterr().out


def test_eval_refuses_a_repeated_column_and_checks_every_folder_first(half_right, tmp_path, capsys):
    data, ckpt = str(half_right / "problems.jsonl"), str(half_right)
    for argv, message in [(["--ckpt", ckpt, ckpt], f"--ckpt {ckpt} is given twice"),
                          (["--ckpt", ckpt, "--ckpt", ckpt], f"--ckpt {ckpt} is given twice"),  # both are kept
                          (["--ckpt", ckpt, "--ckpt", "x", "--names", "a", "a"], "--names a is given twice"),
                          (["--ckpt", ckpt, "--ckpt", "x", "--names", "a"], "--names needs one name per --ckpt"),
                          (["--ckpt", ckpt, str(tmp_path / "nowhere")], "nowhere: no such checkpoint folder")]:
        assert message in one_line_error(evaluation.main, [*argv, "--data", data, "--device", "cpu"], capsys)


@pytest.mark.parametrize("main, argv, message", [
    (train_sft.main, ["--level-weights", "nan,1,1,1,1"], "argument --level-weights: needs 5 non-negative numbers"),
    (train_sft.main, ["--level-weights", "1,inf,1,1,1"], "argument --level-weights: needs 5 non-negative numbers"),
    (bench.main, ["--threads", "0"], "argument --threads: must be >= 1"),
    (bench.main, ["--threads", "-1"], "argument --threads: must be >= 1"),
    (bench.main, ["--repeats", "0"], "argument --repeats: must be >= 1"),
    (bench.main, ["--new-tokens", "-5"], "argument --new-tokens: must be >= 1"),
    (bench.main, ["--batches", "x"], "argument --batches: expected comma-separated integers"),
    (bench.main, ["--batches", "1,0"], "argument --batches: expected comma-separated integers >= 1"),
    (bench.main, ["--engines", "eager,foo"], "argument --engines: unknown 'foo'"),
    (gpu_check.main, ["--device", "tpu"], "argument --device: expected cpu, cuda, cuda:N or auto, got 'tpu'"),
    (gpu_check.main, ["--device", "cpu", "--lengths", "abc"], "argument --lengths: expected comma-separated integers"),
    (gpu_check.main, ["--device", "cpu", "--lengths", "0"], "argument --lengths: expected comma-separated integers >="),
    (gpu_check.main, ["--device", "cpu"], "the 1.5B-shaped step needs a GPU; on a CPU add --tiny"),
    (bench.main, ["--tiny", "--no-baseline"], "--tiny, --no-baseline only go with the GPU measurement: add --device "
     "cuda, or --gpu-path"),  # ignored: --tiny ran the full CPU benchmark
    (bench.main, ["--gpu-path", "--tiny", "--quick", "--threads", "1"], "--quick, --threads only go with the CPU "
     "benchmark"),  # ignored by the GPU measurement
    (bench.main, ["--prompt-len", "40"], "--prompt-len only goes with the GPU measurement"),
    (bench.main, ["--gpu-path", "--tiny", "--prompt-len", "1020"], "--prompt-len 1020 plus --new-tokens 8 exceeds the "
     "model's context of 1024 tokens; give a shorter --prompt-len"),  # before building anything, not in generate
    (bench.main, ["--gpu-path", "--tiny", "--prompt-len", "1016", "--profile", "graph"], "--prompt-len 1016 plus "
     "16 tokens (--profile's longer run) exceeds the model's context of 1024 tokens"),  # not after the measurement
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--out", ""], "--out is empty; give a file path"),  # wrote nothing
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--save-responses"], "--save-responses writes the responses into "
     "--out"),
    (sample.main, ["--ckpt", "x", "--prompt", "1+1", "--key", "problem"], "--key picks the field of --prompts records"),
    (evaluation.main, ["--ckpt", "x", "--data", "y", "--temperature", "0", "--samples", "3"], "--temperature 0 is "
     "greedy: its 3 samples of a problem would be one answer repeated"),
    (sample.main, ["--ckpt", "x", "--prompt", "1+1", "--temperature", "0", "--num-samples", "2"], "--temperature 0 "
     "is greedy: its 2 samples of a prompt would be one answer repeated"),
    (demo.main, ["--report", "results.json", "--fresh"], "--report only prints the tables of a results.json: it "
     "takes no other flag"),
])
def test_more_flags_are_refused_where_they_are_parsed(capsys, main, argv, message):
    if main is select_problems.main:
        argv = ["--ckpt", "x", "--data", "y", "--out", "z", *argv]
    assert message in one_line_error(main, argv, capsys)


def test_a_rope_head_dim_below_2_or_odd_is_refused(tmp_path, capsys):
    err = one_line_error(train_sft.main, ["--n-embd", "4", "--n-head", "4", "--out", str(tmp_path / "sft")], capsys)
    assert "RoPE needs an even head_dim of 2 or more, got 1 (n_embd 4 / n_head 4)" in err
    with pytest.raises(InputError, match="RoPE needs an even head_dim of 2 or more, got 3"):
        GPTConfig(n_embd=12, n_head=4, pos="rope")
    assert GPTConfig(n_embd=4, n_head=4, pos="learned").head_dim == 1  # learned positions have no such need


# ---------------------------------------------------------------------------------------------------
# Run folders: owned, locked, never lost


def tiny_run_flags(half_right, out, steps=2, *extra):
    return ["--init", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(out),
            "--steps", str(steps), "--prompts-per-step", "1", "--samples-per-prompt", "4", "--max-new-tokens", "12",
            "--critic-warmup-steps", "0", "--save-every", "1", "--eval-every", "0", "--device", "cpu", *extra]


def weights(folder):
    return GPT.from_pretrained(str(folder)).state_dict()


def log_steps(out):
    return [json.loads(line)["step"] for line in open(out / "log.jsonl")]


def test_a_reference_or_critic_of_another_vocabulary_is_refused_before_loading(half_right, tmp_path, capsys):
    # Such a --ref crashed at its first forward (IndexError in the embedding), after sampling; --dry-run passed it.
    other = tmp_path / "other"
    GPT(GPTConfig(vocab_size=100, n_layer=1, n_head=2, n_embd=16, n_inner=32, max_seq_len=64)).save(str(other))
    for flag, extra in [("--ref", []), ("--critic-init", []), ("--ref", ["--dry-run"])]:
        err = one_line_error(train_rl.main, tiny_run_flags(half_right, tmp_path / "run", 2, flag, str(other), *extra),
                             capsys)
        assert f"{flag} {other} has a vocabulary of 100 tokens, the actor {half_right} one of 258" in err
        assert not (tmp_path / "run").exists()
    train_rl.main(tiny_run_flags(half_right, tmp_path / "run", 1, "--algo", "grpo", "--kl-estimator", "k3",
                                 "--critic-init", str(other)))  # GRPO has no critic: its --critic-init is unused
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, tmp_path / "dry", 2, "--dry-run", "--eval-every", "1",
                                                       "--eval-data", str(tmp_path / "gone.jsonl")), capsys)
    assert "gone.jsonl: no such problems file" in err
    bad = tmp_path / "noanswer.jsonl"  # the problems are read by the estimate: its error was under the config
    bad.write_text('{"id": "1", "problem": "1+1"}\n')
    capsys.readouterr()
    with pytest.raises(SystemExit):
        train_rl.main(tiny_run_flags(half_right, tmp_path / "dry", 2, "--dry-run", "--data", str(bad)))
    printed = capsys.readouterr()
    assert "noanswer.jsonl:1: no 'answer'" in printed.err and printed.out == "presets: phase 2, toy scale\n"


def test_a_new_run_refuses_a_folder_with_a_run_or_other_files(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out))
    before = (out / "checkpoint" / "actor" / "model.safetensors").read_bytes()
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, out), capsys)
    assert "already holds a run; continue it with --resume, or replace it with --overwrite" in err
    assert (out / "checkpoint" / "actor" / "model.safetensors").read_bytes() == before  # untouched
    (out / "notes.txt").write_text("mine")
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 2, "--overwrite"), capsys)
    assert "holds files that are not a run's (notes.txt)" in err  # even --overwrite deletes nothing of the user's
    (out / "notes.txt").unlink()
    train_rl.main(tiny_run_flags(half_right, out, 2, "--overwrite"))
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in one_line_error(train_rl.main, tiny_run_flags(half_right, tmp_path / "file"),
                                                       capsys)
    assert (tmp_path / "file").read_text() == "x"


def test_keep_every_keeps_the_actor_of_those_steps_and_a_crash_before_keeping_one_is_made_good(half_right, tmp_path,
                                                                                                monkeypatch, capsys):
    constant_lr = ["--warmup-ratio", "0", "--min-lr-ratio", "1"]  # step 2's weights do not depend on --steps
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 4, "--keep-every", "2", *constant_lr))
    assert sorted(os.listdir(out / "actors")) == ["step-2", "step-4"]
    short = tmp_path / "two"
    train_rl.main(tiny_run_flags(half_right, short, 2, *constant_lr))
    for name in ("model.safetensors", "config.json", "tokenizer_bytes.json"):  # the actor after step 2, as saved
        assert (out / "actors" / "step-2" / name).read_bytes() == (short / "checkpoint" / "actor" / name).read_bytes()
    kept, last = out / "actors" / "step-4" / "model.safetensors", out / "checkpoint" / "actor" / "model.safetensors"
    assert kept.stat().st_ino == last.stat().st_ino  # a hard link: no second copy on disk
    assert evaluation.main(["--ckpt", str(out / "actors" / "step-2"), "--data", str(half_right / "problems.jsonl"),
                            "--samples", "2", "--max-new-tokens", "12", "--out", str(tmp_path / "e.json")]) is None

    # A crash between the save and keeping its actor: --resume keeps it, even when the run had finished there.
    real_keep = runs.keep_actor
    monkeypatch.setattr(runs, "keep_actor", lambda cfg, step: None)
    crashed = tmp_path / "crashed"
    train_rl.main(tiny_run_flags(half_right, crashed, 2, "--keep-every", "2", *constant_lr))
    assert not (crashed / "actors").exists()
    monkeypatch.setattr(runs, "keep_actor", real_keep)
    train_rl.main(["--resume", "--out", str(crashed)])
    assert (crashed / "actors" / "step-2" / "model.safetensors").read_bytes() == \
        (short / "checkpoint" / "actor" / "model.safetensors").read_bytes()

    # The kept actors are the run's: --overwrite replaces them, but a file of the user's among them is refused.
    (out / "actors" / "notes.txt").write_text("mine")
    capsys.readouterr()
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 2, "--overwrite"), capsys)
    assert "holds files that are not a run's (actors/notes.txt); move them out, or pick an empty or new --out" in err
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "(actors/notes.txt); move them out of it, then --resume again" in err
    (out / "actors" / "notes.txt").unlink()
    train_rl.main(tiny_run_flags(half_right, out, 1, "--overwrite"))
    assert not (out / "actors").exists() and not (out / "replaced").exists()


def test_kept_actors_are_counted_and_their_files_recognised(tmp_path):
    cfg = train_rl.config(steps=150, keep_every=25)
    assert [memory.kept_actors(cfg, start) for start in (0, 24, 25, 60, 150)] == [6, 6, 5, 4, 0]
    assert memory.kept_actors(train_rl.config(steps=150, keep_every=0)) == 0
    for path in ["actors/step-25/model.safetensors", "actors/step-25/.complete", "actors/step-50.tmp/config.json",
                 "actors/step-50.tmp/model.safetensors.tmp12", "actors/step-75.old/config.json",
                 "actors/step/config.json", "actors/step-7x/config.json", "actors/step-25/notes.txt", "actors/x.txt",
                 "actors/step-05/config.json", "actors/step-0/config.json", "actors/step-\u0663/config.json",
                 "checkpoint/actor/model.safetensors"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    # only the names keep_actor writes: step-05, step-0 or an Arabic-Indic 3 are a user's
    assert common.foreign_files(tmp_path, runs.RUN_FILES) == [
        "actors/step", "actors/step-0", "actors/step-05", "actors/step-25/notes.txt", "actors/step-7x",
        "actors/step-\u0663", "actors/x.txt"]


def stopped_by_ctrl_c(monkeypatch, step, argv):
    """Run train_rl on argv with Ctrl-C pressed during `step`: the run finishes that step, saves and stops."""
    real_collect = train_rl.collect

    def ctrl_c_at_step(*args):
        if args[-1] == step:
            os.kill(os.getpid(), signal.SIGINT)
        return real_collect(*args)

    monkeypatch.setattr(train_rl, "collect", ctrl_c_at_step)
    with pytest.raises(SystemExit):
        train_rl.main(argv)
    monkeypatch.setattr(train_rl, "collect", real_collect)


def test_a_stop_in_the_last_step_ends_the_run_as_done(half_right, tmp_path, monkeypatch, capsys):
    """Nothing is left to resume, so it exits as a finished run (0), not as a stopped one (130), which a
    scheduler would treat as a failure."""
    real_collect = train_rl.collect
    monkeypatch.setattr(train_rl, "collect", lambda *args: os.kill(os.getpid(), signal.SIGTERM) or real_collect(*args)
                        if args[-1] == 1 else real_collect(*args))
    train_rl.main(tiny_run_flags(half_right, tmp_path / "run", 2))  # returns: no SystemExit
    out = capsys.readouterr().out
    assert "done: the trained model is" in out and "--resume" not in out
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["finished"]


@pytest.mark.parametrize("during", ["evaluation", "save"])
def test_a_stop_during_the_evaluation_or_the_save_stops_at_that_step(half_right, tmp_path, monkeypatch, capsys, during):
    """A scheduler's SIGTERM during a step's evaluation or save was acted on only after one more whole step."""
    out = tmp_path / "run"
    where, real = (train_rl, "eval_record") if during == "evaluation" else (runs, "save_checkpoint")
    real_fn, calls = getattr(where, real), []

    def stopped_inside(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the evaluation after step index 1 (the first is step -1's), or the second save
            os.kill(os.getpid(), signal.SIGTERM)
        return real_fn(*args, **kwargs)

    monkeypatch.setattr(where, real, stopped_inside)
    save_every = "10" if during == "evaluation" else "2"  # the evaluation's step (2) saves only when stopped
    with pytest.raises(SystemExit) as e:
        train_rl.main(tiny_run_flags(half_right, out, 6, "--eval-every", "2", "--eval-data",
                                     str(half_right / "problems.jsonl"), "--save-every", save_every))
    assert e.value.code == 130
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == (2 if during == "evaluation" else 4)
    assert log_steps(out)[-1] == (1 if during == "evaluation" else 3)  # no step after the one it stopped in
    monkeypatch.undo()
    train_rl.main(["--resume", "--out", str(out)])  # the held-out start (step -1) is logged once, not again
    assert log_steps(out) == [-1, 0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_weights_files_are_readable_as_the_umask_allows(tmp_path, umask):
    """The safetensors library makes its files 0600: a colleague or an inference server of another user could
    read a checkpoint's config.json but not its weights."""
    old = os.umask(umask)
    try:
        common.save_safetensors({"w": torch.ones(2)}, str(tmp_path / "model.safetensors"))
        common.write_text(tmp_path / "config.json", "{}")
    finally:
        os.umask(old)
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in ("model.safetensors", "config.json")}
    assert modes == {"model.safetensors": 0o666 & ~umask, "config.json": 0o666 & ~umask}


def test_a_run_saved_before_a_flag_was_added_resumes_with_the_flags_old_behaviour(half_right, tmp_path, monkeypatch,
                                                                                    capsys):
    out = tmp_path / "run"
    stopped_by_ctrl_c(monkeypatch, 0, tiny_run_flags(half_right, out, 2))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    del state["config"]["keep_every"]  # as the version before --keep-every saved it
    (out / "checkpoint" / "state.json").write_text(json.dumps(state))
    with monkeypatch.context() as m:  # without its entry: the message names the flag and the entry it needs
        m.setattr(train_rl, "NEW_FLAGS", {})
        err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "another version of train_rl.py (its config lacks --keep-every); resume it with that version" in err
    assert err.endswith("(a flag added to the code since: give it an entry in train_rl.NEW_FLAGS)")
    train_rl.main(["--resume", "--out", str(out)])
    assert log_steps(out) == [0, 1] and not (out / "actors").exists()
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    (out / "checkpoint" / "state.json").write_text(json.dumps({**state, "config": {**state["config"], "lr_x": 1}}))
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "another version of train_rl.py (has --lr-x); resume it with that version" in err and "NEW_FLAGS" not in err
    assert err.endswith(f"--init {out}/checkpoint/actor --critic-init {out}/checkpoint/critic")
    (out / "checkpoint" / "state.json").write_text(json.dumps({**state, "config": {**state["config"], "lr_x": 1,
                                                                                   "algo": "grpo"}}))
    assert one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys).endswith(
        f"--init {out}/checkpoint/actor")  # a GRPO run has no critic to start from


def test_json_nested_too_deeply_gets_one_line(tmp_path):
    (tmp_path / "generation_config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="generation_config.json: JSON nested too deeply to read"):
        common.read_json(tmp_path / "generation_config.json")


def test_a_second_ctrl_c_says_which_checkpoint_is_kept(half_right, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_collect = train_rl.collect
    twice = lambda *args: (os.kill(os.getpid(), signal.SIGINT), os.kill(os.getpid(), signal.SIGINT)) \
        if args[-1] == 1 else real_collect(*args)
    monkeypatch.setattr(train_rl, "collect", twice)
    with pytest.raises(SystemExit) as e:
        train_rl.main(tiny_run_flags(half_right, out, 3))
    err = capsys.readouterr().err
    assert e.value.code == 130
    assert f"quitting without saving: the checkpoint of step 1 is intact; continue with --resume --out {out}" in err


def test_a_seed_too_large_for_the_step_seeds_is_refused_before_any_work(half_right, tmp_path, capsys):
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, tmp_path / "run", 2, "--seed", str(2**33)), capsys)
    assert "--seed: must be in [0, 2147483647], got 8589934592" in err and not (tmp_path / "run").exists()


def test_a_copied_or_moved_run_resumes_in_place(half_right, tmp_path, monkeypatch):
    full = tmp_path / "full"
    train_rl.main(tiny_run_flags(half_right, full, 3))
    stopped_by_ctrl_c(monkeypatch, 1, tiny_run_flags(half_right, tmp_path / "first", 3))
    moved, copy = tmp_path / "moved", tmp_path / "copy"
    os.rename(tmp_path / "first", moved)
    subprocess.run(["cp", "-r", str(moved), str(copy)], check=True)
    before = {p: p.stat().st_mtime_ns for p in moved.rglob("*")}
    train_rl.main(["--resume", "--out", str(copy)])
    assert {p: p.stat().st_mtime_ns for p in moved.rglob("*")} == before  # the folder it was copied from: untouched
    assert json.loads((copy / "config.json").read_text())["out"] == str(copy)
    assert log_steps(copy) == [0, 1, 2]
    a, b = weights(full / "checkpoint" / "actor"), weights(copy / "checkpoint" / "actor")
    assert all(torch.equal(a[k], b[k]) for k in a)  # and it ends where the uninterrupted run ended
    train_rl.main(["--resume", "--out", str(moved)])  # the moved one resumes in place too
    assert log_steps(moved) == [0, 1, 2]


def test_a_second_writer_is_refused(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    with FolderLock(str(out)):
        err = one_line_error(train_rl.main, tiny_run_flags(half_right, out), capsys)
    assert "is in use by process" in err
    train_rl.main(tiny_run_flags(half_right, out))  # the lock goes with its holder


def test_resume_of_a_live_run_that_has_not_saved_yet_says_it_is_in_use(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # what a live run has written before its first checkpoint
    with FolderLock(str(out)):
        err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert f"{out} is in use by process {os.getpid()}, which has not saved a checkpoint yet" in err
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)  # its holder gone
    assert "was stopped before its first checkpoint" in err


def test_a_refused_or_failed_run_leaves_no_lock_file_or_folder(half_right, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    one_line_error(train_rl.main, tiny_run_flags(half_right, data), capsys)  # refused: not a run folder
    assert os.listdir(data) == ["notes.txt"]
    flags = tiny_run_flags(half_right, tmp_path / "new")
    flags[flags.index("--data") + 1] = str(tmp_path / "nowhere.jsonl")
    one_line_error(train_rl.main, flags, capsys)  # failed on its inputs, after taking the folder
    assert not (tmp_path / "new").exists()
    train_rl.main(tiny_run_flags(half_right, tmp_path / "run", 1))  # a run that worked keeps its folder's lock
    assert ".lock" in os.listdir(tmp_path / "run")


def test_an_interrupted_checkpoint_swap_is_finished_on_resume(tmp_path):
    def folder(name, marker):
        os.makedirs(tmp_path / name)
        (tmp_path / name / "state.json").write_text(marker)

    final = str(tmp_path / "checkpoint")
    # Killed between the two renames: only .old (previous) and a complete .tmp (new) exist: the new one wins.
    folder("checkpoint.old", "old")
    folder("checkpoint.tmp", "new")
    (tmp_path / "checkpoint.tmp" / ".complete").write_text("")
    recover_dir(final)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"] and (tmp_path / "checkpoint" / "state.json").read_text() == "new"
    # Killed while writing the new one: the half-written .tmp goes, the finished checkpoint stays.
    folder("checkpoint.tmp", "half")
    recover_dir(final)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"] and (tmp_path / "checkpoint" / "state.json").read_text() == "new"
    # Killed after the first rename, the new folder not complete (cannot happen with publish_dir, but safe).
    os.rename(final, final + ".old")
    folder("checkpoint.tmp", "half")
    recover_dir(final)
    assert (tmp_path / "checkpoint" / "state.json").read_text() == "new"
    os.makedirs(tmp_path / "next")
    publish_dir(str(tmp_path / "next"), final)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"] and os.listdir(final) == [".complete"]


def test_a_checkpoint_is_on_disk_before_the_last_one_is_deleted(tmp_path, monkeypatch):
    """A killed process loses nothing the page cache holds; a power cut or a stopped VM does. So every file
    of the new checkpoint, every folder's list of names and the swap are fsynced before the old one goes
    (runs.save_checkpoint writes through these three functions)."""
    final, tmp = tmp_path / "checkpoint", tmp_path / "checkpoint.tmp"
    os.makedirs(final)
    events, real_fsync, real_rmtree = [], os.fsync, shutil.rmtree
    name = lambda fd: re.sub(r"\.tmp\d+$", "", os.readlink(f"/proc/self/fd/{fd}"))  # a file before its rename
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(name(fd)) or real_fsync(fd))
    monkeypatch.setattr(shutil, "rmtree", lambda path, *a, **k: events.append(f"rmtree {path}") or real_rmtree(path, *a, **k))
    common.save_safetensors({"w": torch.ones(2)}, str(tmp / "actor" / "model.safetensors"))
    common.write_json({"step": 1}, str(tmp / "state.json"))
    publish_dir(str(tmp), str(final))
    deleted = events.index(f"rmtree {final}.old")
    synced = {path.replace(str(tmp), str(final)) for path in events[:deleted]}
    assert {str(p) for p in [final, *final.rglob("*")]} - synced == set()
    assert str(tmp_path) in events[events.index(f"{tmp}/.complete") : deleted]  # the swap itself


def test_resume_rebuilds_the_log_from_the_checkpoint(half_right, tmp_path):
    cut = tmp_path / "cut"
    train_rl.main(tiny_run_flags(half_right, cut, 3))
    # As if killed after the checkpoint of step index 1 (2 steps done) while writing its log line: torn. (Only
    # state.json says so; the weights are step 3's, so the redone step is not compared with a full run's.)
    lines = (cut / "log.jsonl").read_text().splitlines()
    state = json.loads((cut / "checkpoint" / "state.json").read_text())
    state.update(step=2, finished=False, lengths=state["lengths"][:2], record=json.loads(lines[1]))
    (cut / "checkpoint" / "state.json").write_text(json.dumps(state))
    (cut / "log.jsonl").write_text(lines[0] + "\n" + '{"step": 1, "torn')
    train_rl.main(["--resume", "--out", str(cut)])
    assert log_steps(cut) == [0, 1, 2]  # step 1's line rebuilt from state.json, step 2 redone
    rebuilt = [json.loads(line) for line in open(cut / "log.jsonl")]
    assert rebuilt[:2] == [json.loads(line) for line in lines[:2]]  # the whole record, not just its step


def test_resume_refuses_a_hand_edited_config_value_its_flag_would_not_give(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 2))
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    for edit, message in [({"steps": "300"}, "--steps '300': --steps 300 gives 300"),  # a TypeError at step 2
                          ({"actor_lr": -1}, "--actor-lr -1: must be > 0, got -1"),
                          ({"adam_betas": [0.9]}, "--adam-betas [0.9]: expected a list of 2 values"),
                          ({"sampler": "fast"}, "--sampler 'fast': expected one of auto, eager, graph, compiled"),
                          ({"steps": None}, "--steps null: expected a value (its default is 150)")]:
        path.write_text(json.dumps({**state, "config": {**state["config"], **edit}}))
        err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
        assert f"{path}: the run's config has {message}; write a value the flag takes" in err, err
    path.write_text(json.dumps({**state, "finished": False, "config": {**state["config"], "steps": 3}}))
    train_rl.main(["--resume", "--out", str(out)])  # an edit the flag accepts: three steps instead of two
    assert log_steps(out) == [0, 1, 2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a saved cuda device must be one this machine lacks")
def test_a_run_saved_on_a_gpu_resumes_on_the_cpu_with_device_given_again(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 2))
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "finished": False, "config": {**state["config"], "device": "cuda", "steps": 3}}))
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "the run's device cuda: no CUDA GPU is visible to torch here" in err and "give another --device" in err
    train_rl.main(["--resume", "--out", str(out), "--device", "cpu"])  # the saved config's check sees the new one
    assert log_steps(out) == [0, 1, 2]


def test_stop_length_ratio_compares_the_first_and_last_ten_steps():
    assert train_rl.shortened([100.0] * 10 + [60.0] * 10, 0.6)
    assert not train_rl.shortened([100.0] * 10 + [60.0] * 9, 0.6)  # 19 steps: too few to compare two windows
    assert not train_rl.shortened([100.0] * 10 + [60.0] * 9 + [61.0], 0.6)  # 60.1 on average
    assert train_rl.shortened([100.0] * 10 + [90.0] * 7 + [55.0] * 10, 0.6)  # the first ten against the last ten
    assert not train_rl.shortened([100.0] * 10 + [10.0] * 10, 0.0)  # 0: never


def test_stop_length_ratio_waits_for_two_windows_that_do_not_overlap():
    """19 steps of which the last 9 fell to 10 tokens: the last ten (100 + 9 x 10 = 190) over the first ten (1000)
    would be 0.19, but those windows share step 9; there is no ratio, and no stop, before step 20."""
    assert train_rl.length_ratio([100.0] * 10 + [10.0] * 9) is None
    assert not train_rl.shortened([100.0] * 10 + [10.0] * 9, 0.6)
    assert train_rl.length_ratio([100.0] * 10 + [10.0] * 10) == pytest.approx(0.1)


def test_a_run_that_stops_early_is_finished_and_resumes_to_nothing(half_right, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_rl, "STOP_WINDOW", 1)  # each step's mean length against step 0's
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 6, "--stop-length-ratio", "1.0", "--save-every", "25"))
    lengths = [json.loads(line)["length_mean"] for line in open(out / "log.jsonl")]
    stop = next(i for i in range(1, 6) if lengths[i] <= lengths[0])  # the first step as short as step 0
    assert len(lengths) == stop + 1 < 6  # it ended there, before --steps
    assert f"stopped at step {stop + 1} of 6" in capsys.readouterr().out
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert (state["step"], state["finished"], state["lengths"]) == (stop + 1, True, lengths)  # saved, off-schedule
    saved = lambda: ((out / "log.jsonl").read_text(), {p: p.stat().st_mtime_ns for p in (out / "checkpoint").rglob("*")})
    before = saved()
    train_rl.main(["--resume", "--out", str(out)])
    assert "the run had finished at step" in capsys.readouterr().out
    assert saved() == before  # no step redone, no checkpoint written
    assert demo.rl_phase(str(out), [], 6) == str(out / "checkpoint" / "actor")
    assert f"reusing {out} (finished)" in capsys.readouterr().out


def test_state_json_from_another_version_is_refused(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 1))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    (out / "checkpoint" / "state.json").write_text(json.dumps({**state, "version": 1}))
    assert "another version of train_rl.py" in one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "nothing to resume" in one_line_error(train_rl.main, ["--resume", "--out", str(tmp_path / "none")], capsys)
    err = one_line_error(train_rl.main, ["--resume", "--out", str(half_right)], capsys)  # a model, not a run
    assert f"{half_right} is a model (train_sft.py's, or a Hugging Face folder), not a train_rl.py run folder" in err
    assert f"give --init {half_right} and a new --out" in err  # it said: stopped before its first checkpoint


def test_train_sft_and_demo_never_delete_what_they_did_not_write(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for main, argv in [(train_sft.main, ["--out", str(mine), "--overwrite", "--steps", "1"]),
                       (demo.main, ["--quick", "--out", str(mine), "--fresh"]),
                       (demo.main, ["--quick", "--out", str(mine), "--fresh", "--base", "nowhere"])]:
        one_line_error(main, argv, capsys)
        assert (mine / "notes.txt").read_text() == "keep"
    (tmp_path / "f").write_text("x")
    assert "is a file, not a folder" in one_line_error(train_sft.main, ["--out", str(tmp_path / "f")], capsys)


def files_of(folder):
    """{path: bytes} of every file under `folder` but the lock (whose holder's id each claim writes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def test_overwrite_keeps_the_old_run_until_every_input_of_the_new_one_is_checked(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out))
    before = files_of(out)
    long = problems_file(tmp_path, [json.dumps({"id": "long", "problem": "9" * 1000, "answer": "1"})])
    corrupt = tmp_path / "corrupt"
    shutil.copytree(half_right, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not safetensors")
    for extra, message in [(["--data", str(tmp_path / "nowhere.jsonl")], "nowhere.jsonl: no such"),
                           (["--data", long], "exceeds the model's context"),
                           (["--ref", str(corrupt)], "model.safetensors"),
                           (["--ref", str(tmp_path / "nowhere")], "nowhere: no such checkpoint folder"),
                           (["--eval-data", str(tmp_path / "nowhere.jsonl"), "--eval-every", "1"], "nowhere.jsonl"),
                           # the model it would start from, and its data, are the old run's files
                           (["--init", str(out / "checkpoint" / "actor")], "lies inside --out"),
                           (["--data", str(out / "log.jsonl")], "lies inside --out")]:
        err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 2, "--overwrite", *extra), capsys)
        assert message in err
        assert files_of(out) == before  # the old run is still whole
    train_rl.main(tiny_run_flags(half_right, out, 3, "--overwrite"))
    assert log_steps(out) == [0, 1, 2]


def test_an_overwrite_that_fails_before_its_first_checkpoint_puts_the_old_run_back(half_right, tmp_path,
                                                                                   monkeypatch, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out))
    before = files_of(out)
    real_collect = train_rl.collect

    def fails_at(bad_step, error):
        def collect(*args):
            assert (out / runs.REPLACED).is_dir() == (args[-1] == 0)  # set aside until the first save (every step)
            if args[-1] == bad_step:
                raise error
            return real_collect(*args)
        return collect

    for error in (torch.OutOfMemoryError("CUDA out of memory"), KeyboardInterrupt()):  # a second Ctrl-C
        monkeypatch.setattr(train_rl, "collect", fails_at(0, error))
        with pytest.raises(SystemExit):  # one line, exit status 2; 130 after a second Ctrl-C
            train_rl.main(tiny_run_flags(half_right, out, 3, "--overwrite", "--seed", "1"))
        assert files_of(out) == before
        assert "the run it was to replace (--overwrite) is back in place" in capsys.readouterr().err
    runs.set_aside(str(out), ["checkpoint", "config.json", "log.jsonl"])  # as a run killed before its first save
    (out / "config.json").write_text("{}")
    (out / "log.jsonl").write_text("")
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "stopped before its first checkpoint" in err and f"is kept in {out}/replaced" in err
    with pytest.raises(SystemExit):
        train_rl.main(tiny_run_flags(half_right, out))
    note, err = capsys.readouterr().err.splitlines()  # the run put back first, then refused as before
    assert "the run it was to replace is back in place" in note and "already holds a run" in err
    assert files_of(out) == before
    monkeypatch.setattr(train_rl, "collect", fails_at(1, torch.OutOfMemoryError("CUDA out of memory")))
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 3, "--overwrite", "--seed", "1"), capsys)
    assert err.startswith("error: out of GPU memory (CUDA out of memory); lower --sample-batch")  # after the new
    # run's first checkpoint: that one is kept
    assert sorted(os.listdir(out)) == [".lock", "checkpoint", "config.json", "log.jsonl"]
    assert runs.read_state(str(out))["config"]["seed"] == 1 and log_steps(out) == [0]


def test_settle_replaced_finishes_an_overwrite_cut_short_at_any_stage(tmp_path):
    old = {"config.json": b"old config", "log.jsonl": b"old log", "checkpoint/state.json": b"old state"}

    def folder(name, files):
        for path, data in files.items():
            (tmp_path / name / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / path).write_bytes(data)
        return str(tmp_path / name)

    aside = lambda where: {f"{where}/{path}": data for path, data in old.items()}
    new = {"config.json": b"new config", "log.jsonl": b"new log"}
    cases = [  # (what a crash left, whether the old run comes back, what the folder holds after)
        ({"config.json": b"old config", **{k: v for k, v in aside("replaced.tmp").items() if "config" not in k}},
         True, old),  # while set_aside moved the files: the ones moved go back
        ({**new, **aside("replaced"), "checkpoint.tmp/actor/x": b"half a save"}, True, old),  # no checkpoint yet
        ({**aside("replaced.tmp"), "log.jsonl": b"old log"}, True, old),  # while the old files moved back
        ({**new, "checkpoint/state.json": b"new state", **aside("replaced")}, False,
         {**new, "checkpoint/state.json": b"new state"}),  # the new run saved: the old one goes
        ({**new, "checkpoint/state.json": b"new state", "replaced.old/log.jsonl": b"old log"}, False,
         {**new, "checkpoint/state.json": b"new state"}),  # while it went
    ]
    for i, (left, restored, after) in enumerate(cases):
        out = folder(f"case{i}", left)
        assert runs.settle_replaced(out) == restored, i
        assert files_of(Path(out)) == after, i
        assert runs.settle_replaced(out) is False and files_of(Path(out)) == after, i  # once done, nothing to do


def test_a_disk_without_room_for_two_checkpoints_is_refused_and_a_failed_save_keeps_the_last(half_right, tmp_path,
                                                                                             monkeypatch, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out))
    files = list((out / "checkpoint").rglob("*.safetensors"))  # the rest: json files of a few kB
    data = sum(p.stat().st_size - 8 - int.from_bytes(p.read_bytes()[:8], "little") for p in files)  # less headers
    size = memory.checkpoint_bytes(GPT.from_pretrained(str(half_right)).config)
    assert abs(size - data) < 0.001 * data  # weights and AdamW moments; AdamW's step counts are a few bytes
    capsys.readouterr()
    train_rl.main(tiny_run_flags(half_right, tmp_path / "dry", 2, "--dry-run"))
    dry = capsys.readouterr().out
    assert f"checkpoint on disk: {size / 2**30:.2f} GiB" in dry
    n = sum(p.numel() for p in GPT.from_pretrained(str(half_right)).parameters())
    assert f"estimated memory per GPU: {n / 1e6:.2f}M-parameter model on 1 GPU(s)" in dry  # it said 0.000B
    monkeypatch.setattr(memory, "free_bytes", lambda path: int(1.5 * size))
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, tmp_path / "new"), capsys)
    assert f"the run needs {2 * size / 2**20:.2f} MiB for its checkpoints" in err and "pick another --out" in err
    actor = 4 * sum(p.numel() for p in GPT.from_pretrained(str(half_right)).parameters())  # a kept actor: fp32 weights
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, tmp_path / "new", 2, "--keep-every", "1"), capsys)
    assert f"needs {(2 * size + 2 * actor) / 2**20:.2f} MiB" in err and f"2 kept actors of {actor / 2**20:.2f} MiB" in err
    assert not (tmp_path / "new").exists()
    train_rl.main(tiny_run_flags(half_right, out, 3, "--overwrite"))  # the old run's checkpoint goes at the first save

    real_save, calls = common.save_file, []

    def disk_full_in_the_second_save(tensors, path):  # its second file, the critic's weights, after the actor's
        calls.append(path)
        if sum("critic" in p for p in calls) == 2:  # safetensors reports it as SafetensorError, not OSError
            raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")
        return real_save(tensors, path)

    monkeypatch.setattr(common, "save_file", disk_full_in_the_second_save)
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 3, "--overwrite"), capsys)
    assert "could not save the checkpoint of step 2" in err and "No space left on device" in err
    assert f"the checkpoint of step 1 is intact; once that is fixed, continue with --resume --out {out}" in err
    assert sorted(os.listdir(out)) == [".lock", "checkpoint", "config.json", "log.jsonl"]  # no half-written copy
    monkeypatch.setattr(common, "save_file", real_save)
    train_rl.main(["--resume", "--out", str(out)])
    assert log_steps(out) == [0, 1, 2]


@pytest.mark.parametrize("damage, message", [
    (lambda ckpt: (ckpt / "optim.safetensors").unlink(), "optim.safetensors: missing"),  # FileNotFoundError
    (lambda ckpt: shutil.copy(ckpt / "actor" / "model.safetensors", ckpt / "optim.safetensors"),
     "optim.safetensors: not this run's optimiser state (ValueError"),
    (lambda ckpt: (ckpt.parent / "log.jsonl").write_text('[1, 2]\n' + (ckpt.parent / "log.jsonl").read_text()),
     "log.jsonl:1: not a step's record"),  # TypeError
    (lambda ckpt: (ckpt / "state.json").write_text(json.dumps(
        {k: v for k, v in json.loads((ckpt / "state.json").read_text()).items() if k != "lengths"})),
     "state.json: lengths missing or of the wrong type"),  # KeyError
])
def test_a_damaged_run_folder_gets_one_line_on_resume(half_right, tmp_path, capsys, damage, message):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 1))  # a finished run is read as fully as one cut short
    damage(out / "checkpoint")
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert message in err and "the run folder is damaged: restore it from a copy, or start the run again" in err


def test_a_refused_resume_changes_nothing_in_a_live_run(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out))
    ckpt = out / "checkpoint"
    shutil.copytree(ckpt, out / "checkpoint.tmp")
    (out / "checkpoint.tmp" / ".complete").unlink()
    with FolderLock(str(out)):  # the live writer, while it writes checkpoint.tmp, then between its two renames
        for swap in ("writing", "between renames"):
            if swap == "between renames":
                os.rename(ckpt, out / "checkpoint.old")
                (out / "checkpoint.tmp" / ".complete").write_text("")
            before = files_of(out)
            assert "is in use by process" in one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
            assert files_of(out) == before, swap
    train_rl.main(["--resume", "--out", str(out)])  # holding the lock, it finishes the swap
    assert sorted(os.listdir(out)) == [".lock", "checkpoint", "config.json", "log.jsonl"]


def test_overwrite_deletes_only_what_a_run_writes(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out))
    overwrite = lambda folder: one_line_error(train_rl.main, tiny_run_flags(half_right, folder, 2, "--overwrite"),
                                              capsys)
    for name in ["log.jsonl.old", "checkpoint.tmpl", "config.json.tmp.bak", "checkpoint/README_mine.txt",
                 "checkpoint/actor/notes"]:
        (out / name).write_text("mine")
        assert f"holds files that are not a run's ({name})" in overwrite(out)
        assert (out / name).read_text() == "mine"
        (out / name).unlink()
    mine = tmp_path / "mine"  # the user's folder, with a config.json and a checkpoint/ of its own
    (mine / "checkpoint").mkdir(parents=True)
    (mine / "config.json").write_text("{}")
    (mine / "checkpoint" / "weights.bin").write_text("mine")
    assert "holds files that are not a run's (checkpoint/weights.bin)" in overwrite(mine)
    assert (mine / "checkpoint" / "weights.bin").read_text() == "mine"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "checkpoint").symlink_to(out / "checkpoint", target_is_directory=True)
    assert "holds files that are not a run's (checkpoint)" in overwrite(linked)
    assert (out / "checkpoint" / "state.json").is_file()
    # What a run does write is replaced, the temp copies of a crash included.
    (out / "log.jsonl.tmp123").write_text("")
    shutil.copytree(out / "checkpoint", out / "checkpoint.old")
    train_rl.main(tiny_run_flags(half_right, out, 3, "--overwrite"))
    assert sorted(os.listdir(out)) == [".lock", "checkpoint", "config.json", "log.jsonl"]
    assert log_steps(out) == [0, 1, 2]
    # The demo's --fresh recognises its own folders (seeds holding runs) and nothing else.
    for name in ("phase1", "phase2", *demo.ABLATIONS):
        shutil.copytree(out, tmp_path / "demo" / "seed0" / name)
    (tmp_path / "demo" / "seed0" / "eval.json.tmp.json").write_text("{}")
    (tmp_path / "demo" / "demo.json").write_text("{}")
    (tmp_path / "demo" / "training_curves.png.tmp123").write_bytes(b"")  # a plot cut short (plots.save's temp name)
    assert check_out_folder(str(tmp_path / "demo"), demo.DEMO_FILES, overwrite=True) == \
        ["demo.json", "seed0", "training_curves.png.tmp123"]
    (tmp_path / "demo" / "seed0" / "phase1" / "checkpoint" / "mine.txt").write_text("mine")
    with pytest.raises(InputError, match=r"not a demo run's \(seed0/phase1/checkpoint/mine.txt\)"):
        check_out_folder(str(tmp_path / "demo"), demo.DEMO_FILES, overwrite=True, what="demo run")


def test_train_sft_overwrite_keeps_the_old_checkpoint_until_the_new_one_is_saved(tmp_path, monkeypatch):
    out = tmp_path / "base"
    tiny = ["--out", str(out), "--steps", "1", "--batch-size", "2", "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--probe-every", "0"]
    train_sft.main(tiny)
    before = files_of(out)

    def killed(*args):
        raise RuntimeError("killed while training")

    monkeypatch.setattr(train_sft, "batches", killed)
    with pytest.raises(RuntimeError):
        train_sft.main([*tiny, "--overwrite", "--seed", "1"])
    assert files_of(out) == before
    monkeypatch.undo()
    train_sft.main([*tiny, "--overwrite", "--seed", "1"])
    assert json.loads((out / "train_sft.json").read_text())["args"]["seed"] == 1
    assert os.listdir(tmp_path) == ["base"]  # no .old or .tmp copy left


def test_a_run_stopped_before_its_first_checkpoint_is_told_what_works(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out))
    shutil.rmtree(out / "checkpoint")  # as if killed before its first save (--save-every 25)
    for argv in (["--resume", "--out", str(out)], tiny_run_flags(half_right, out)):
        err = one_line_error(train_rl.main, argv, capsys)
        assert "stopped before its first checkpoint" in err and "start it again with --overwrite" in err
        assert "with --resume" not in err
    train_rl.main(tiny_run_flags(half_right, out, 2, "--overwrite"))  # what the messages say works
    assert log_steps(out) == [0, 1]


def test_out_may_not_be_the_data_file(half_right, tmp_path, capsys):
    data = tmp_path / "p.jsonl"
    data.write_bytes((half_right / "problems.jsonl").read_bytes())
    os.link(data, tmp_path / "again.jsonl")  # the same file by another name
    for main in (select_problems.main, evaluation.main):
        for out in (data, tmp_path / "." / "p.jsonl", tmp_path / "again.jsonl"):
            err = one_line_error(main, ["--ckpt", str(half_right), "--data", str(data), "--out", str(out)], capsys)
            assert f"--out {out} is the --data file" in err
    assert data.read_bytes() == (half_right / "problems.jsonl").read_bytes()


# ---------------------------------------------------------------------------------------------------
# PPO numerics


def test_bf16_reference_is_exactly_the_initial_policy(half_right, tmp_path):
    cfg = train_rl.config(init=str(half_right), data=str(half_right / "problems.jsonl"), out=str(tmp_path),
                          dtype="bf16", max_new_tokens=12, prompts_per_step=1, samples_per_prompt=8, device="cpu")
    models, tok = runs.load_models(cfg, cfg.init, cfg.init)
    problems = read_problems(cfg.data)
    prompts = {p["id"]: tok.encode(prompt_text(p["problem"], tok)) for p in problems}
    batch, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=0)
    assert torch.equal(batch.logp, batch.logp_ref)  # k1 KL at step 0: exactly 0, under bf16 autocast


# ---------------------------------------------------------------------------------------------------
# Fault injection: SIGKILL at random points of the save path, then --resume


KILL_SCRIPT = r"""
import os, shutil, signal, sys
sys.path.insert(0, sys.argv[1])
import train_rl
countdown = [int(sys.argv[2])]
def deadly(fn):
    def wrapped(*args, **kwargs):
        countdown[0] -= 1
        if countdown[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapped
os.replace, shutil.rmtree = deadly(os.replace), deadly(shutil.rmtree)  # every file write ends in a rename
train_rl.append_jsonl = deadly(train_rl.append_jsonl)
train_rl.main(sys.argv[3:])
"""


@pytest.mark.slow
def test_sigkill_during_saves_never_loses_a_checkpoint_and_resume_ends_as_uninterrupted(half_right, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda kill_at, argv: subprocess.run([sys.executable, "-c", KILL_SCRIPT, REPO, str(kill_at), *argv],
                                               capture_output=True, text=True, env=env)
    steps = 8
    full = tmp_path / "full"
    assert run(0, tiny_run_flags(half_right, full, steps)).returncode == 0
    out, rng, kills = tmp_path / "killed", random.Random(0), 0
    while kills < 20:
        try:
            state = runs.read_state(str(out))  # what --resume does first: finish an interrupted swap
        except InputError:
            state = None  # killed before the first checkpoint was published: start over
        logged = log_steps(out) if (out / "log.jsonl").exists() else []
        if logged:  # a step is logged only after its checkpoint is published: that checkpoint must be there
            assert state is not None and state["step"] >= max(logged) + 1
        argv = ["--resume", "--out", str(out)] if state else tiny_run_flags(half_right, out, steps, "--overwrite")
        result = run(rng.randint(1, 14), argv)  # about one step's worth of renames, removals and log writes
        if result.returncode == 0:
            break  # finished before the next kill
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        kills += 1
    assert kills >= 20
    if not (out / "checkpoint" / "state.json").exists() or runs.read_state(str(out))["step"] < steps:
        assert run(0, ["--resume", "--out", str(out)]).returncode == 0
    a, b = weights(full / "checkpoint" / "actor"), weights(out / "checkpoint" / "actor")
    assert all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda rec: {k: v for k, v in rec.items() if not k.startswith("time") and k != "tokens_per_s"}
    read = lambda folder: [drop(json.loads(line)) for line in open(folder / "log.jsonl")]
    assert read(full) == read(out)


@pytest.mark.slow
def test_sigkill_at_every_point_of_an_overwrite_keeps_the_old_run_or_the_new_checkpoint(half_right, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished, out = tmp_path / "finished", tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, finished))
    before, argv = files_of(finished), tiny_run_flags(half_right, out, 1, "--overwrite", "--seed", "1")
    kept = {}  # kill point: what the folder holds once settled
    for kill_at in range(1, 100):  # each rename, removal and log write of the run, up to its end
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(finished, out)
        result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, REPO, str(kill_at), *argv], capture_output=True,
                                text=True, env=env)
        if result.returncode == 0:
            break
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        with FolderLock(str(out)):  # what the next train_rl.py on the folder does first
            runs.settle_replaced(str(out))
        kept[kill_at] = "old" if files_of(out) == before else runs.read_state(str(out))["config"]["seed"]
        assert kept[kill_at] in ("old", 1), kill_at  # the old run whole, or the new run's published checkpoint
        assert not [name for name in os.listdir(out) if name.startswith(runs.REPLACED)], kill_at
    assert result.returncode == 0 and "old" in kept.values() and 1 in kept.values(), kept


# ---------------------------------------------------------------------------------------------------
# Outputs that cannot be written are refused before the work; --ref and moved inputs


def test_outputs_that_cannot_be_written_are_refused_before_any_work(half_right, tmp_path, capsys):
    import tasks
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder\n")
    cases = [(train_sft.main, ["--out", str(a_file / "sub"), "--steps", "1"], "cannot create its folder"),
             (train_rl.main, tiny_run_flags(half_right, "", 1), "--out '': cannot create the folder"),
             (train_rl.main, tiny_run_flags(half_right, a_file / "sub", 1), f"cannot create the folder ({a_file} is a file)"),
             (bench.main, ["--quick", "--out", str(tmp_path)], "is a folder; give a file path"),
             (gpu_check.main, ["--tiny", "--device", "cpu", "--out", str(tmp_path)], "is a folder; give a file path"),
             (tasks.main, ["--out", str(a_file)], "is a file; give a folder"),
             (tasks.main, ["--out", str(a_file / "sub")], f"cannot create it ({a_file} is a file)")]  # a traceback
    for main, argv, message in cases:
        assert message in one_line_error(main, argv, capsys), argv
    assert a_file.read_text() == "not a folder\n" and not os.path.exists(".tmp" + str(os.getpid()))


def test_a_reference_with_a_shorter_context_is_refused_before_any_work(half_right, tmp_path, capsys):
    short, model = copy_of(half_right, tmp_path), GPT.from_pretrained(str(half_right))
    model.config.max_seq_len = 8  # the same policy, with position embeddings for 8 tokens only
    model.pos_emb.weight = torch.nn.Parameter(model.pos_emb.weight[:8].detach().clone())
    model.save(str(short))
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, tmp_path / "run", 1, "--ref", str(short)), capsys)
    assert "plus 12 new tokens exceeds the model's context of 8" in err
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_a_resume_whose_reference_or_data_moved_is_told_which_flag_gives_the_new_place(half_right, tmp_path, capsys):
    init = copy_of(half_right, tmp_path)
    run = tmp_path / "run"
    train_rl.main(tiny_run_flags(init, run, 1, "--steps", "2", "--save-every", "1"))
    capsys.readouterr()
    os.rename(init, tmp_path / "moved")  # the reference (--init) and the data (inside it) move away
    err = one_line_error(train_rl.main, ["--resume", "--out", str(run)], capsys)
    assert f"the run's reference (its --init) {init} is gone; give its new place with --resume --ref PATH" in err
    err = one_line_error(train_rl.main, ["--resume", "--out", str(run), "--ref", str(tmp_path / "moved")], capsys)
    assert "the run's --data" in err and "--resume --data PATH" in err
    train_rl.main(["--resume", "--out", str(run), "--ref", str(tmp_path / "moved"),
                   "--data", str(tmp_path / "moved" / "problems.jsonl")])
    assert log_steps(run) == [0, 1]


def test_a_run_on_problems_without_ids_resumes_after_their_file_moved(half_right, tmp_path, capsys):
    """Such records (GSM8K's) were named "path:line", so a moved file changed every id, and the resume check
    refused the same problems as changed ones."""
    data = tmp_path / "a" / "gsm.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "id"}) + "\n"
                            for line in open(half_right / "problems.jsonl")))
    run = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, run, 1, "--steps", "2", "--data", str(data)))
    capsys.readouterr()
    os.rename(data.parent, tmp_path / "b")
    train_rl.main(["--resume", "--out", str(run), "--data", str(tmp_path / "b" / "gsm.jsonl")])
    assert log_steps(run) == [0, 1] and "resumed from" in capsys.readouterr().out
    # A run saved by a version that named them "PATH:N" (PATH: where the file was then) resumes too
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    old_named = [{**p, "id": f"{data}:{n}"} for n, p in enumerate(read_problems(str(tmp_path / "b" / "gsm.jsonl")), 1)]
    for problems, resumes in [(old_named, True), (old_named[1:], False)]:
        state["inputs"]["problems"] = hashlib.sha256(json.dumps(problems, sort_keys=True).encode()).hexdigest()
        (run / "checkpoint" / "state.json").write_text(json.dumps(state))
        argv = ["--resume", "--out", str(run), "--data", str(tmp_path / "b" / "gsm.jsonl")]
        if resumes:
            train_rl.main(argv)
            assert "the run had finished at step 2: nothing to do" in capsys.readouterr().out
        else:
            assert "the run's --data problems are not those it started with" in one_line_error(train_rl.main, argv, capsys)


def test_train_sft_refuses_a_folder_of_the_users_where_it_parks_the_old_checkpoint(tmp_path, capsys):
    out = tmp_path / "base"
    tiny = ["--out", str(out), "--steps", "1", "--batch-size", "2", "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--probe-every", "0"]
    (tmp_path / "base.old").mkdir()
    (tmp_path / "base.old" / "notes.txt").write_text("mine")
    err = one_line_error(train_sft.main, tiny, capsys)
    assert "base.old is in the way" in err and "move it, or pick another --out" in err
    assert (tmp_path / "base.old" / "notes.txt").read_text() == "mine" and not out.exists()
    (tmp_path / "base.old" / "notes.txt").unlink()  # an empty one, or one a crash left (a checkpoint): ours
    train_sft.main(tiny)
    assert sorted(os.listdir(tmp_path)) == ["base"]


def test_train_sft_finishes_a_save_cut_short_between_its_two_renames(tmp_path, monkeypatch, capsys):
    out = tmp_path / "base"
    tiny = ["--out", str(out), "--steps", "1", "--batch-size", "2", "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--probe-every", "0"]
    seed_of = lambda: json.loads((out / "train_sft.json").read_text())["args"]["seed"]
    train_sft.main(tiny)

    def killed_between_renames(tmp, final):  # publish_dir's first rename done, the second never made
        (Path(tmp) / ".complete").write_text("")
        os.replace(final, f"{final}.old")
        raise KeyboardInterrupt

    # (the new run's seed, whether its complete copy survived the crash, the seed --out holds once finished)
    for new, survived, after in [(1, True, 1), (2, False, 1)]:  # the new copy wins; without it the old one is back
        monkeypatch.setattr(train_sft, "publish_dir", killed_between_renames)
        with pytest.raises(SystemExit):
            train_sft.main([*tiny, "--overwrite", "--seed", str(new)])
        monkeypatch.undo()
        if not survived:
            [shutil.rmtree(p) for p in tmp_path.glob("base.tmp*")]
        assert not out.exists() and (tmp_path / "base.old").is_dir()
        capsys.readouterr()
        with pytest.raises(SystemExit):
            train_sft.main(tiny)  # a later call finishes the save, then refuses as it would have
        note, err = capsys.readouterr().err.splitlines()
        assert "finished a save that had been cut short" in note and "already holds a checkpoint" in err
        assert seed_of() == after and sorted(os.listdir(tmp_path)) == ["base"]


def test_the_command_that_started_a_run_plus_resume_continues_it(half_right, tmp_path, monkeypatch, capsys):
    """As eval.py's does. It refused every flag other than the movable ones ("drop --data, --init, --out, ...",
    all ten of them), so only a hand-trimmed command resumed; a flag whose value differs is still refused."""
    out = tmp_path / "run"
    argv = tiny_run_flags(half_right, out, 3, "--levels", "1,2", "--adam-betas", "0.9", "0.95", "--scale", "auto")
    stopped_by_ctrl_c(monkeypatch, 1, argv)
    capsys.readouterr()
    monkeypatch.chdir(half_right.parent)  # --init and --data given relative: the run saved them absolute
    relative = [os.path.relpath(a) if a.startswith(str(half_right)) else a for a in argv]
    os.symlink(half_right, tmp_path / "link")  # the same folder by another path
    linked = [str(tmp_path / "link") if a == str(half_right) else a for a in argv]
    train_rl.main([*relative, "--resume"])
    assert log_steps(out) == [0, 1, 2] and "resumed from" in capsys.readouterr().out
    train_rl.main([*linked, "--resume"])
    assert "the run had finished at step 3: nothing to do" in capsys.readouterr().out
    for flags, differ in [(["--steps", "4"], "--steps 4 (the run's: 3)"),
                          (["--levels", "2"], "--levels 2 (the run's: 1,2)"),
                          (["--adam-betas", "0.9", "0.99"], "--adam-betas 0.9,0.99 (the run's: 0.9,0.95)"),
                          (["--scale", "paper"], "--scale paper (the run's: toy)"),
                          (["--critic-init", str(half_right)], f"--critic-init {half_right} (the run's: not given)"),
                          (["--whiten-advantages", "false", "--steps", "3"],
                           "--whiten-advantages false (the run's: true)")]:
        err = one_line_error(train_rl.main, [*argv, "--resume", *flags], capsys)
        assert err.startswith(f"error: --resume continues the saved run in --out; drop {differ}"), err
        assert ("start a new run from it" in err) == (flags[0] == "--steps")


def test_a_finished_run_is_trained_further_as_its_message_says(half_right, tmp_path, capsys):
    out = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, out, 2))
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out), "--steps", "4"], capsys)
    assert "--resume continues the saved run in --out; drop --steps" in err
    said = err.split("start a new run from it: ")[1].split()
    assert said == ["--init", f"{out}/checkpoint/actor", "--critic-init", f"{out}/checkpoint/critic",
                    "--ref", str(half_right)]  # the KL still pulls towards the first run's reference
    more = tmp_path / "more"
    flags = tiny_run_flags(half_right, more, 2)
    flags[flags.index("--init") + 1] = said[1]
    train_rl.main(flags + said[2:])
    assert log_steps(more) == [0, 1]
    critic = GPT.from_pretrained(said[3], value_head=True)  # as --critic-init loads it: the trained value head
    saved = safetensors.torch.load_file(os.path.join(said[3], "model.safetensors"))
    head = {k: v for k, v in saved.items() if "value" in k}
    assert [torch.equal(critic.value_head.state_dict()[k.split(".")[-1]], v) for k, v in head.items()] == [True, True]


def test_a_path_of_the_wrong_kind_is_named_as_such(half_right, tmp_path, capsys):
    flags = lambda init, data: ["--init", str(init), "--data", str(data), "--out", str(tmp_path / "run")]
    err = one_line_error(train_rl.main, flags(half_right / "problems.jsonl", half_right / "problems.jsonl"), capsys)
    assert "problems.jsonl is a file, not a checkpoint folder" in err
    err = one_line_error(train_rl.main, flags(half_right, tmp_path), capsys)
    assert f"{tmp_path} is a folder, not a problems file" in err


def test_a_run_started_with_relative_paths_resumes_from_another_folder(half_right, tmp_path, monkeypatch):
    monkeypatch.chdir(half_right.parent)
    flags = tiny_run_flags(Path(os.path.relpath(half_right)), tmp_path / "run", 2)  # --init tiny0 --data tiny0/...
    stopped_by_ctrl_c(monkeypatch, 0, flags)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["init"], saved["data"]) == (str(half_right), str(half_right / "problems.jsonl"))
    monkeypatch.chdir(tmp_path)
    train_rl.main(["--resume", "--out", str(tmp_path / "run")])
    assert log_steps(tmp_path / "run") == [0, 1]


def test_select_problems_keeps_its_pass_rates_when_too_few_qualify(half_right, tmp_path, capsys):
    data = tmp_path / "p.jsonl"  # the tiny policy answers 1 or 2: "3" is never solved
    data.write_text("".join(json.dumps({"id": a, "problem": "1", "answer": a, "level": 1}) + "\n" for a in "123"))
    out = tmp_path / "set.jsonl"
    with pytest.raises(SystemExit) as e:
        select_problems.main(["--ckpt", str(half_right), "--data", str(data), "--samples", "8", "--num-problems", "3",
                              "--max-new-tokens", "12", "--out", str(out)])
    printed, err = capsys.readouterr()
    err = err.strip().splitlines()[-1]  # after the sampling's progress lines
    assert e.value.code == 2 and err.startswith("error: ")
    assert f"note: --candidates 256, but {data} holds 3 problems: trying them all" in printed
    assert "only 2 of 3 candidates have a pass rate in (0.0, 1.0)" in err and f"{out}.candidates.jsonl" in err
    rates = {r["id"]: r["pass_rate"] for r in map(json.loads, open(f"{out}.candidates.jsonl"))}
    assert rates["3"] == 0 and 0 < rates["1"] < 1 and 0 < rates["2"] < 1 and not out.exists()
    assert "raise --candidates" not in err and "give more problems (all 3 of" in err  # all 3 were tried


def test_select_problems_too_few_candidates_names_the_limit_that_binds(half_right, tmp_path, capsys):
    """--candidates 2 of a file of 3: more problems in the file would not help, a larger --candidates would."""
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": a, "problem": "1", "answer": a, "level": 1}) + "\n" for a in "123"))
    err = one_line_error(select_problems.main, ["--ckpt", str(half_right), "--data", str(data), "--candidates", "2",
                                                "--num-problems", "3", "--out", str(tmp_path / "set.jsonl")], capsys)
    assert "lower --num-problems or raise --candidates" in err and "give more problems" not in err


def test_select_problems_lists_problems_without_levels(half_right, tmp_path, capsys):
    data = tmp_path / "gsm8k.jsonl"  # GSM8K-style records: no level
    data.write_text("".join(json.dumps({"question": "1", "answer": f"so #### {a}"}) + "\n" for a in "12"))
    select_problems.main(["--ckpt", str(half_right), "--data", str(data), "--samples", "8", "--num-problems", "2",
                          "--out", str(tmp_path / "set.jsonl")])
    printed = capsys.readouterr().out
    listed = [line for line in printed.splitlines() if " pass " in line]
    assert len(listed) == 2 and not any("level" in line for line in listed), listed
    assert "--max-new-tokens 56" in printed  # the default: the context of 64 less the prompt "Q: 1\nA: "
    # the recorded rates chose the problems (the lowest of noisy estimates run low): how to measure them afresh
    command = re.search(r"eval\.py (.*) measures it afresh", printed).group(1).split()
    evaluation.main(command)  # the printed command runs, with the selection's model and sampling settings
    assert "--top-p 1" in " ".join(command) and "--max-new-tokens 56" in " ".join(command)


def test_demo_base_that_is_a_run_folder_names_its_model(half_right, tmp_path, capsys):
    train_rl.main(tiny_run_flags(half_right, tmp_path / "run", 1))
    err = one_line_error(demo.main, ["--base", str(tmp_path / "run"), "--out", str(tmp_path / "demo")], capsys)
    assert f"is a train_rl.py run folder, not a model; its model is {tmp_path / 'run' / 'checkpoint' / 'actor'}" in err


def test_a_file_in_the_way_of_an_output_folder_is_named(tmp_path, capsys):
    (tmp_path / "notes.md").write_text("x")
    err = one_line_error(evaluation.main, ["--ckpt", "x", "--data", "y", "--out", str(tmp_path / "notes.md" / "r.json")],
                         capsys)
    assert f"cannot create its folder ({tmp_path / 'notes.md'} is a file)" in err


def test_ctrl_c_outside_a_run_ends_in_one_line(capsys):
    from common import cli

    @cli
    def main():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 130 and capsys.readouterr().err == "stopped (Ctrl-C)\n"


def test_resume_refuses_other_problems_or_another_reference_than_the_run_started_with(half_right, tmp_path, capsys):
    """A phase-2 set selected again into the same file while the run was stopped: the resumed run trained on
    the new set without a word (--data and --ref may be given again, for a moved folder, and were not checked)."""
    data = tmp_path / "problems.jsonl"
    shutil.copy(half_right / "problems.jsonl", data)
    out = tmp_path / "run"
    flags = tiny_run_flags(half_right, out, 2)
    flags[flags.index("--data") + 1] = str(data)
    train_rl.main(flags)
    state = out / "checkpoint" / "state.json"
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "finished": False, "config": {**saved["config"], "steps": 3}}))
    moved = tmp_path / "moved.jsonl"
    shutil.copy(data, moved)
    data.write_text(data.read_text().replace('"answer": "1"', '"answer": "2"'))
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "the run's --data problems are not those it started with" in err
    other = tmp_path / "other-ref"
    shutil.copytree(half_right, other)
    safetensors.torch.save_file({k: v + 1 for k, v in safetensors.torch.load_file(str(other / "model.safetensors")).items()},
                                str(other / "model.safetensors"))
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out), "--data", str(moved), "--ref", str(other)], capsys)
    assert "the run's reference policy are not those it started with" in err
    train_rl.main(["--resume", "--out", str(out), "--data", str(moved)])  # the same problems, moved: resumes
    assert log_steps(out) == [0, 1, 2]


def test_flags_that_would_do_nothing_or_fail_later_are_refused_at_start(half_right, tmp_path, capsys):
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"problem": "9" * 50, "answer": "9"}) + "\n")
    for extra, message in [
        (["--eval-data", str(long), "--eval-every", "2"], "its prompt of 57 tokens plus 12 new tokens exceeds"),
        (["--stop-length-ratio", "0.9"], "--stop-length-ratio compares the first and last 10 steps' lengths, so it "
                                         "needs --steps 20 or more"),
        (["--reward-correct", "1e300"], "--reward-correct: must be in [-1000000.0, 1000000.0]"),
    ]:
        out = tmp_path / "run"
        err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 2, *extra), capsys)
        assert message in err, err
        assert not out.exists()  # refused before anything was written
    train_rl.main(tiny_run_flags(half_right, out, 1, "--algo", "grpo", "--kl-estimator", "k3", "--gae-lambda", "0.5"))
    assert "note: --algo grpo has no critic and no GAE: --critic-warmup-steps, --gae-lambda go unused" in \
        capsys.readouterr().out  # said, not refused: one command line may serve both algorithms
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out), "--eval-data", str(long)], capsys)
    assert "--resume --eval-data gives a moved held-out file's new place, but this run evaluates nothing" in err


def test_seed_counts_the_scripts_cannot_use_are_refused(capsys):
    """train_sft.py --seed beyond 64 bits ended in a traceback; demo.py --seeds 101 left a seed100 folder that the
    demo does not own, so no rerun (--fresh included) could use its --out again."""
    for main, argv, message in [(train_sft.main, ["--seed", str(2**70)], "--seed: must be in [0, 2147483647]"),
                                (demo.main, ["--seeds", "101"], "--seeds: must be in [1, 100], got 101")]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_kill_inside_a_safetensors_write_leaves_a_run_that_resumes(half_right, tmp_path, monkeypatch, capsys):
    """The safetensors library writes a file through its own temp file beside it (.tmpXXXXXX); a SIGKILL in
    that write left checkpoint.tmp/actor/.tmpl1eKDM, which was read as a file not the run's, so --resume and
    --overwrite were both refused and the intact checkpoint of the step before was given up (a review helper's
    kill trial). The unfinished save is the run's: resume deletes it and goes on."""
    out = tmp_path / "run"
    stopped_by_ctrl_c(monkeypatch, 0, tiny_run_flags(half_right, out, 2))
    (out / "checkpoint.tmp" / "actor").mkdir(parents=True)
    (out / "checkpoint.tmp" / "actor" / ".tmpl1eKDM").write_bytes(b"\0" * 64)
    train_rl.main(["--resume", "--out", str(out)])
    assert sorted(os.listdir(out)) == [".lock", "checkpoint", "config.json", "log.jsonl"]
    assert log_steps(out) == [0, 1]
    (out / "checkpoint.tmpx").mkdir()  # not a save's folder: the user's
    assert "holds files that are not a run's (checkpoint.tmpx)" in one_line_error(
        train_rl.main, tiny_run_flags(half_right, out, 3, "--overwrite"), capsys)
    (out / "checkpoint.tmpx").rmdir()
    (out / "checkpoint.tmp").mkdir()  # a save's folder holds only a save's files: not the user's notes
    (out / "checkpoint.tmp" / "notes.txt").write_text("mine")
    assert "holds files that are not a run's (checkpoint.tmp/notes.txt)" in one_line_error(
        train_rl.main, tiny_run_flags(half_right, out, 3, "--overwrite"), capsys)
    assert (out / "checkpoint.tmp" / "notes.txt").read_text() == "mine"


def test_a_full_disk_or_read_only_folder_gives_one_line_and_the_run_resumes(half_right, tmp_path, monkeypatch,
                                                                             capsys):
    """A write the disk refuses outside a checkpoint save (the log's append on a full disk, the lock file of
    a read-only folder) ended in a double traceback; now one line, and --resume continues from the checkpoint
    saved before the log line (its record is in state.json)."""
    import errno
    out, real_append, appended = tmp_path / "run", train_rl.append_jsonl, []

    def append(path, rec):
        appended.append(rec["step"])
        if len(appended) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(path, rec)

    monkeypatch.setattr(train_rl, "append_jsonl", append)
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 3), capsys)
    assert err == ("error: a write: No space left on device; free some space, then run the same command again (with "
                   "--resume where the script takes it: what it had finished is kept)")
    monkeypatch.setattr(train_rl, "append_jsonl", real_append)
    train_rl.main(["--resume", "--out", str(out)])
    assert log_steps(out) == [0, 1, 2]

    def read_only(path, *args, **kwargs):  # the folder's first write is its lock file
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(common, "open", read_only, raising=False)
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert err.startswith(f"error: {out / '.lock'}: Read-only file system; give a path on a writable file system")

    def unreadable(path, *args, **kwargs):  # an input the process may not read is not a full disk
        if str(path).endswith("state.json"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(common, "open", unreadable, raising=False)
    err = one_line_error(train_rl.main, ["--resume", "--out", str(out)], capsys)
    assert "state.json: Permission denied; fix its permissions or give another path" in err


OOM = ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 3.06 GiB "
       "is free.\nSee documentation for Memory Management")


def test_out_of_gpu_memory_gives_one_line_and_the_run_resumes_with_smaller_batches(half_right, tmp_path,
                                                                                    monkeypatch, capsys):
    """An out-of-memory error in a step was a traceback, and --resume refused the smaller batches that fix it.
    Now one line names the flags, and the run resumed with them ends where a run that had them throughout
    ends: a row's samples do not depend on the batch it is sampled in, nor the gradients on the micro-batches."""
    out, real_update, steps = tmp_path / "run", train_rl.update, []

    def update(cfg, models, batch, step, train_actor):
        steps.append(step)
        if step == 1 and len(steps) == 2:
            raise torch.OutOfMemoryError(OOM)
        return real_update(cfg, models, batch, step, train_actor)

    monkeypatch.setattr(train_rl, "update", update)
    err = one_line_error(train_rl.main, tiny_run_flags(half_right, out, 3, "--sample-batch", "4"), capsys)
    assert err == ("error: out of GPU memory (CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total "
                   "capacity of 79.19 GiB of which 3.06 GiB is free.); lower --sample-batch (sampling, evaluation) or "
                   "--micro-batch-tokens and --micro-batch (the update), which --resume takes again (--dry-run "
                   "--gpu-mem GIB estimates a run's peak), then run the same command again (with --resume where the "
                   "script takes it: what it had finished is kept)")
    smaller = ["--sample-batch", "1", "--micro-batch", "1", "--micro-batch-tokens", "8", "--grad-checkpointing", "true",
               "--sampler", "graph"]
    train_rl.main(["--resume", "--out", str(out), *smaller])
    assert steps == [0, 1, 1, 2] and log_steps(out) == [0, 1, 2]
    config = json.loads((out / "checkpoint" / "state.json").read_text())["config"]
    assert (config["sample_batch"], config["micro_batch"], config["micro_batch_tokens"], config["sampler"]) == \
        (1, 1, 8, "graph")

    monkeypatch.setattr(train_rl, "update", real_update)
    train_rl.main(tiny_run_flags(half_right, tmp_path / "small", 3, *smaller))
    logs = [[json.loads(line) for line in open(run / "log.jsonl")] for run in (out, tmp_path / "small")]
    assert [r["length_mean"] for r in logs[0]] == [r["length_mean"] for r in logs[1]]
    a, b = weights(out / "checkpoint" / "actor"), weights(tmp_path / "small" / "checkpoint" / "actor")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5  # step 0 ran with the larger batches
    err = one_line_error(train_rl.main, ["--resume", "--out", str(tmp_path / "small"), "--max-new-tokens", "8"], capsys)
    assert err.startswith("error: --resume continues the saved run in --out; drop --max-new-tokens")


def test_out_of_gpu_memory_names_each_scripts_own_flags(capsys):
    def runs_out(argv=None):
        raise torch.OutOfMemoryError(OOM)

    for main, words in ((common.cli(runs_out), "lower --batch-size"),
                        (common.cli(memory="lower --lengths")(runs_out), "lower --lengths")):
        err = one_line_error(main, [], capsys)
        assert err.startswith("error: out of GPU memory (CUDA out of memory. Tried to allocate 20.00 GiB.")
        assert f"is free.); {words}, then run the same command again" in err


def test_the_demo_out_of_gpu_memory_names_no_flag_it_lacks(monkeypatch, capsys):
    import demo  # its models are tiny: another process holds the memory (it has no --batch-size to lower)

    monkeypatch.setattr(demo, "Parser", lambda **kwargs: (_ for _ in ()).throw(torch.OutOfMemoryError(OOM)))
    err = one_line_error(demo.main, [], capsys)
    assert "is free.); the demo's models are tiny, so other processes hold the GPU's memory" in err
    assert "--batch-size" not in err


def test_the_demos_advice_to_move_to_the_cpu_names_what_that_costs(monkeypatch, capsys, tmp_path):
    import demo  # a demo folder made on a GPU (device auto: cuda) refuses a CPU run: the stamp's device differs

    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: True)
        demo.claim_out_dir(str(tmp_path), demo.run_stamp(demo.BASE, demo.SETTINGS["full"]))
    with pytest.raises(common.InputError, match="presets.phase1.device"):
        demo.claim_out_dir(str(tmp_path), demo.run_stamp(demo.BASE, demo.SETTINGS["full"]))
    monkeypatch.setattr(demo, "Parser", lambda **kwargs: (_ for _ in ()).throw(torch.OutOfMemoryError(OOM)))
    err = one_line_error(demo.main, [], capsys)
    assert "CUDA_VISIBLE_DEVICES=, the demo starts again: add --fresh, or give another --out" in err


def test_a_resume_needs_room_only_for_the_actors_it_has_left_to_keep(tmp_path, monkeypatch):
    """check_disk on --resume from step 8 of 10 with --keep-every 2: one actor left to keep (step 10), not five;
    counting the five refused a resume near the end of a run that had room for it."""
    from types import SimpleNamespace
    model = GPT(GPTConfig(vocab_size=10, n_layer=1, n_head=1, n_embd=4, n_inner=8, max_seq_len=8))
    n = sum(p.numel() for p in model.parameters())
    models = SimpleNamespace(actor=SimpleNamespace(model=model), critic=None)
    cfg = train_rl.config(steps=10, keep_every=2, out=str(tmp_path / "run"))  # no checkpoint there yet
    need = 2 * 12 * n + 1 * 4 * n  # two checkpoints of fp32 weights and AdamW moments, one kept fp32 actor
    monkeypatch.setattr(memory, "free_bytes", lambda path: need)
    runs.check_disk(cfg, models, start=8)
    monkeypatch.setattr(memory, "free_bytes", lambda path: need - 1)
    with pytest.raises(InputError, match="and 1 kept actors of"):
        runs.check_disk(cfg, models, start=8)


def test_a_moved_input_given_as_a_relative_path_on_resume_is_saved_absolute(tmp_path, monkeypatch):
    """--resume --data/--ref PATH give a moved file's new place: a relative PATH is saved absolute, as a new run
    saves its paths, so that a later --resume from another folder still finds it."""
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (tmp_path / "model").mkdir()
    (tmp_path / "new.jsonl").write_text("")
    config = {"out": str(out), "init": str(tmp_path / "gone"), "ref": None, "critic_init": None, "algo": "ppo",
              "data": str(tmp_path / "old.jsonl"), "eval_data": None, "eval_every": 0, "device": "cpu"}
    state = {"version": runs.STATE_VERSION, "step": 1, "finished": False, "lengths": [9.0], "record": {},
             "config": config}
    (out / "checkpoint" / "state.json").write_text(json.dumps(state))
    monkeypatch.chdir(tmp_path)
    cfg = runs.resumed_config(str(out), {"data": "new.jsonl", "ref": "model"}, set(config), lambda c: None, {})
    assert (cfg["data"], cfg["ref"]) == (str(tmp_path / "new.jsonl"), str(tmp_path / "model"))


def test_the_lowest_temperature_the_message_names_is_accepted():
    """"must be 0 (greedy) or >= 0.001": 0.001 itself samples."""
    assert common.temperature("0.001") == common.sampling_temperature("0.001") == common.MIN_TEMPERATURE
    assert common.temperature_ok(common.MIN_TEMPERATURE) and not common.temperature_ok(0.000999)


def test_a_reference_that_differs_only_past_its_first_mib_is_another_reference(tmp_path):
    """model_fingerprint hashes a weights file's first and last MiB: a model that differs from the run's reference
    only in its last MiB (its last tensors, in a large model) must not pass for it."""
    for name, tail in (("a", b"\0"), ("b", b"\1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "model.safetensors").write_bytes(bytes(3 * 2**20) + tail)
    assert runs.model_fingerprint(str(tmp_path / "a")) != runs.model_fingerprint(str(tmp_path / "b"))
    shutil.copytree(tmp_path / "a", tmp_path / "copy")  # a copied folder is the same model
    assert runs.model_fingerprint(str(tmp_path / "copy")) == runs.model_fingerprint(str(tmp_path / "a"))
