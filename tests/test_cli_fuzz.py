"""Inputs a fuzzing review found mishandled: an empty --out (export_hf.py wrote its files over those of the current
folder, then deleted its config.json; train_sft.py trained, then failed in a traceback), outputs written inside a
train_rl.py run folder (its next save deleted them), the demo's advice naming a flag it does not have, and an eval.py
progress file whose response records are damaged (a traceback once every other response was sampled)."""

import hashlib
import json
import os

import pytest

import demo
import eval as evaluation
import export_hf
import plots
import select_problems
import train_rl
import train_sft
from test_export_hf import tokenizers, trained_checkpoint  # noqa: F401 (a fixture)
from test_reliability import one_line_error, tiny_run_flags


def digests(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in sorted(os.listdir(folder))}


def test_an_empty_out_touches_nothing_in_the_current_folder(tokenizers, tmp_path, monkeypatch, capsys):  # noqa: F811
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "qwen2")
    capsys.readouterr()  # transformers' progress bars
    here = tmp_path / "users-model"  # the folder the user runs the command from: a model of their own
    here.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (here / name).write_text(f"the user's own {name}")
    before = digests(here)
    monkeypatch.chdir(here)
    # --out "$EXPORT" with EXPORT unset: the export wrote model.safetensors and the tokenizer files over the
    # folder's own, then removed its config.json (the read-back of "" failed), exit 2 with ": no such checkpoint"
    assert "--out is empty; give a folder path" in one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", ""],
                                                                  capsys)
    # train_sft.py trained for --steps, then its rename to "" failed: a traceback, the model left in .tmpPID
    assert "--out is empty; give a folder path" in one_line_error(train_sft.main, ["--out", "", "--steps", "1"], capsys)
    assert digests(here) == before


def test_outputs_inside_a_run_folder_are_refused_before_any_work(half_right, tmp_path, capsys):
    run = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, run, 1))
    actor, data = str(run / "checkpoint" / "actor"), str(half_right / "problems.jsonl")
    wanted = f"is inside the train_rl.py run folder {run}: its next save deletes what is in its checkpoint/"
    # eval.py wrote it, and the run's next save (publish_dir) deleted it with the old checkpoint, without a word
    for out in (run / "checkpoint" / "eval.json", run / "checkpoint" / "actor" / "eval.json", run / "eval.json"):
        argv = ["--ckpt", actor, "--data", data, "--samples", "1", "--max-new-tokens", "8", "--out", str(out)]
        assert wanted in one_line_error(evaluation.main, argv, capsys)
    argv = ["--ckpt", actor, "--data", data, "--out", str(run / "checkpoint" / "set.jsonl")]
    assert wanted in one_line_error(select_problems.main, argv, capsys)
    argv = ["--logs", str(run / "log.jsonl"), "--out-dir", str(run / "checkpoint")]
    assert wanted in one_line_error(plots.main, argv, capsys)
    assert sorted(os.listdir(run / "checkpoint")) == [".complete", "actor", "critic", "optim.safetensors", "state.json"]
    train_rl.main(["--resume", "--out", str(run)])  # nothing of another's in the folder: it still resumes


def test_the_demos_advice_on_a_folder_of_other_files_names_no_flag_it_lacks(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    err = one_line_error(demo.main, ["--quick", "--out", str(tmp_path)], capsys)
    assert "holds files that are not a demo run's (notes.txt)" in err
    assert "--resume" not in err and "run the same demo command again (or give another --out)" in err  # demo.py has
    # no --resume: the advice was "move them out of it, then --resume again"


@pytest.mark.parametrize("script", ["eval", "select_problems", "plots"])
def test_outputs_beside_a_run_folder_are_still_written(half_right, tmp_path, script):
    run = tmp_path / "run"
    train_rl.main(tiny_run_flags(half_right, run, 1))
    actor, data = str(run / "checkpoint" / "actor"), str(half_right / "problems.jsonl")
    if script == "eval":
        evaluation.main(["--ckpt", actor, "--data", data, "--samples", "1", "--max-new-tokens", "8", "--out",
                         str(tmp_path / "eval.json")])
        assert (tmp_path / "eval.json").is_file()
    elif script == "plots":
        plots.main(["--logs", str(run / "log.jsonl"), "--out-dir", str(tmp_path / "plots")])
        assert (tmp_path / "plots" / "training_curves.png").is_file()
    else:
        with pytest.raises(SystemExit):  # the tiny policy gives no problem in range: refused after sampling, which
            select_problems.main(["--ckpt", actor, "--data", data, "--samples", "2", "--max-new-tokens", "8",
                                  "--num-problems", "1", "--out", str(tmp_path / "set.jsonl")])
        assert (tmp_path / "set.jsonl.candidates.jsonl").is_file()  # ran past the check of --out


@pytest.mark.parametrize("change", [lambda r: r.pop("level"), lambda r: r.update(correct="yes"),
                                    lambda r: r.update(length="10"), lambda r: r.clear() or r.update(x=None)])
def test_a_progress_file_with_a_damaged_response_record_gets_one_line_before_sampling(half_right, tmp_path, capsys,
                                                                                      monkeypatch, change):
    out = tmp_path / "e.json"
    argv = ["--ckpt", str(half_right), "--data", str(half_right / "problems.jsonl"), "--samples", "8",
            "--batch-size", "1", "--max-new-tokens", "8", "--out", str(out)]  # 8 rows: two chunks of 4
    real = evaluation.generate
    calls = []

    def stop_after_one_chunk(*a, **k):  # an evaluation stopped (Ctrl-C) after its first chunk
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(evaluation, "generate", stop_after_one_chunk)
    with pytest.raises(SystemExit):
        evaluation.main(argv)
    progress = tmp_path / "e.json.partial.jsonl"
    lines = [json.loads(x) for x in progress.read_text().splitlines()]
    assert sum("index" in x for x in lines) == 4
    change(lines[2]["record"])
    progress.write_text("".join(json.dumps(x) + "\n" for x in lines))
    monkeypatch.setattr(evaluation, "generate", real)
    capsys.readouterr()
    # it sampled the other responses, then summarize failed in a traceback (KeyError: 'level', TypeError: ...)
    err = one_line_error(evaluation.main, argv + ["--resume"], capsys)
    assert "not an eval.py progress file (a line without its fields); or delete it to start over" in err


@pytest.mark.parametrize("template, error", [("{{ 1 // 0 }}", "ZeroDivisionError"),
                                             ("{% for i in range(200000) %}{% endfor %}x", "OverflowError")])
def test_a_chat_template_that_fails_in_arithmetic_gets_one_line(half_right, tmp_path, capsys, template, error):
    from test_reliability import hf_tokenizer_folder, sample_error

    folder = hf_tokenizer_folder(half_right, tmp_path, lambda t, c: c.update(chat_template=template))
    err = sample_error(folder, capsys)  # was a traceback: only TemplateError, TypeError, ... were caught
    assert f"the model's chat template (chat_template.jinja or tokenizer_config.json) fails on a user message: {error}" \
        in err
