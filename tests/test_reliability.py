"""Runs never lose work, and every bad value gets one line: flags, data files, checkpoints, run folders.

Each case names what a user typed or gave, and the words of the one-line error it must get (exit status 2,
no traceback). The run-folder cases check that nothing finished is lost or overwritten."""

import json
import os
import random
import signal
import subprocess
import sys

import pytest
import torch

import demo
import eval as evaluation
import sample
import select_problems
import runs
import train_rl
import train_sft
from common import FolderLock, InputError, publish_dir, recover_dir
from model import GPT
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
    (["--gamma", "2"], "argument --gamma: must be in [0, 1]"),
    (["--gae-lambda", "-0.5"], "argument --gae-lambda: must be in [0, 1]"),
    (["--clip-eps", "-0.2"], "argument --clip-eps: must be > 0"),
    (["--kl-coef", "-1"], "argument --kl-coef: must be >= 0"),
    (["--temperature", "-1"], "argument --temperature: must be > 0"),
    (["--temperature", "0"], "argument --temperature: must be > 0"),
    (["--eval-problems", "x"], "argument --eval-problems: expected an integer, got 'x'"),
    (["--loss-agg", "sum"], "argument --loss-agg: invalid choice"),
    (["--minibatches", "100"], "--minibatches (100) exceeds a step's 64 responses"),
    (["--algo", "grpo", "--kl-estimator", "k1"], "use --kl-estimator k3"),
    (["--algo", "grpo", "--samples-per-prompt", "1"], "needs --samples-per-prompt of 2 or more"),
    (["--critic-warmup-steps", "5", "--steps", "5"], "leaves no step for the actor"),
    (["--eval-every", "5"], "--eval-every needs --eval-data"),
    (["--resume", "--actor-lr", "1e-3"], "drop --actor-lr"),
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
    (sample.main, ["--ckpt", "x", "--prompt", "1", "--temperature", "-1"], "argument --temperature: must be >= 0"),
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


def test_eval_refuses_an_unwritable_out_before_sampling(half_right, tmp_path, capsys):
    argv = ["--ckpt", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(tmp_path)]
    assert f"{tmp_path} is a folder; give a file path" in one_line_error(evaluation.main, argv, capsys)


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


def test_non_utf8_lines_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"p.jsonl:2: not UTF-8 text"):
        read_problems(problems_file(tmp_path, [b'{"problem": "a", "answer": "1"}', b'{"problem": "\xff"}'], raw=True))


def test_answers_are_read_as_written_or_parsed(tmp_path):
    lines = ['{"id": "a", "problem": "p", "answer": 1e-05}', '{"id": "b", "problem": "p", "answer": 1e+21}',
             '{"id": "c", "problem": "p", "answer": 2.50}', '{"id": "d", "problem": "p", "answer": 29}',
             '{"id": "e", "problem": "p", "answer": "Natalia sold 48/2 = 24 clips.\\n#### 1,072"}']
    answers = [r["answer"] for r in read_problems(problems_file(tmp_path, lines))]
    assert answers == ["0.00001", "1000000000000000000000", "2.50", "29", "1072"]


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
# Run folders: owned, locked, never lost


def tiny_run_flags(half_right, out, steps=2, *extra):
    return ["--init", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(out),
            "--steps", str(steps), "--prompts-per-step", "1", "--samples-per-prompt", "4", "--max-new-tokens", "12",
            "--critic-warmup-steps", "0", "--save-every", "1", "--eval-every", "0", "--device", "cpu", *extra]


def weights(folder):
    return GPT.from_pretrained(str(folder)).state_dict()


def log_steps(out):
    return [json.loads(line)["step"] for line in open(out / "log.jsonl")]


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


def test_a_copied_or_moved_run_resumes_in_place(half_right, tmp_path, monkeypatch):
    full = tmp_path / "full"
    train_rl.main(tiny_run_flags(half_right, full, 3))
    real_collect = train_rl.collect

    def ctrl_c_at_step_1(*args):
        if args[-1] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # the run finishes step 1, saves and stops
        return real_collect(*args)

    monkeypatch.setattr(train_rl, "collect", ctrl_c_at_step_1)
    with pytest.raises(SystemExit):
        train_rl.main(tiny_run_flags(half_right, tmp_path / "first", 3))
    monkeypatch.setattr(train_rl, "collect", real_collect)
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


def test_resume_rebuilds_the_log_from_the_checkpoint(half_right, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_rl.main(tiny_run_flags(half_right, full, 3))
    train_rl.main(tiny_run_flags(half_right, cut, 3))
    # As if killed after step 2's checkpoint but before its log line, with a torn line from a later write.
    lines = (cut / "log.jsonl").read_text().splitlines()
    (cut / "log.jsonl").write_text("\n".join(lines[:2]) + '\n{"step": 2, "rew')
    state = json.loads((cut / "checkpoint" / "state.json").read_text())
    state.update(step=2, finished=False, lengths=state["lengths"][:2])  # the checkpoint of step index 1 (2 done)
    state["record"] = json.loads(lines[1])
    (cut / "checkpoint" / "state.json").write_text(json.dumps(state))
    (cut / "log.jsonl").write_text(lines[0] + "\n" + '{"step": 1, "torn')
    train_rl.main(["--resume", "--out", str(cut)])
    assert log_steps(cut) == [0, 1, 2]  # step 1's line rebuilt from state.json, step 2 redone


def test_stop_length_ratio_compares_the_first_and_last_ten_steps():
    assert train_rl.shortened([100.0] * 10 + [60.0] * 10, 0.6)
    assert not train_rl.shortened([100.0] * 10 + [60.0] * 9, 0.6)  # 19 steps: too few to compare two windows
    assert not train_rl.shortened([100.0] * 10 + [60.0] * 9 + [61.0], 0.6)  # 60.1 on average
    assert train_rl.shortened([100.0] * 10 + [90.0] * 7 + [55.0] * 10, 0.6)  # the first ten against the last ten
    assert not train_rl.shortened([100.0] * 10 + [10.0] * 10, 0.0)  # 0: never


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
