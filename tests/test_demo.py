import json
import math
import os
import shutil
from pathlib import Path

import pytest

import demo
import plots
import select_problems
import train_rl
from common import InputError, read_json

TINY = dict(phase1_steps=2, phase2_steps=4, eval_every=1, eval_problems=5, test_per_level=4, test_samples=2,
            candidates=40, set_size=2, min_pass_rate=0.4)


@pytest.mark.slow
def test_the_full_pipeline_for_two_seeds_on_tiny_settings(tmp_path, capsys, monkeypatch):
    # Every stage of the full demo (phase 1, the set, phase 2, both ablations, evaluation, plots, the
    # results.json of every seed and the mean ± sd table) on tiny numbers; the real ones take 20 minutes a seed.
    monkeypatch.setitem(demo.SETTINGS, "full", TINY)
    toy = {**train_rl.SCALE_PRESETS["toy"], "prompts_per_step": 2, "samples_per_prompt": 4, "critic_warmup_steps": 1}
    monkeypatch.setitem(train_rl.SCALE_PRESETS, "toy", toy)  # small steps: the real ones take 6 s each
    monkeypatch.setattr(train_rl, "STOP_WINDOW", 1)  # so that the stop message has a ratio after 3 steps
    monkeypatch.setattr(train_rl, "shortened", lambda lengths, ratio: ratio > 0 and len(lengths) == 3)
    out = tmp_path / "demo"
    demo.main(["--seeds", "2", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    for seed in (0, 1):  # phase 2 stopped after 3 of its 4 steps, and the ablations ran those 3 steps
        assert {name: demo.plots.read_log(str(out / f"seed{seed}" / name / "log.jsonl"))[-1]["step"]
                for name in ("phase1", "phase2", "lambda1", "grpo")} == {"phase1": 1, "phase2": 2, "lambda1": 2, "grpo": 2}
    assert results["seeds"] == [0, 1] and [r["seed"] for r in results["runs"]] == [0, 1]
    for run in results["runs"]:
        assert list(run["rows"]) == demo.ROWS
        for r in run["rows"].values():
            assert 0 <= r["accuracy"] <= 100 and r["length"] > 0 and set(r["levels"]) == {"1", "2", "3", "4", "5"}
    assert results["runs"][0]["rows"]["base"] == results["runs"][1]["rows"]["base"]  # one base, one test set
    for name in ("training_curves.png", "tradeoff.png", "results.md", "seed1/phase2_set.jsonl"):
        assert os.path.getsize(out / name) > 0
    printed = capsys.readouterr().out
    assert "| accuracy % | " in printed and " ± " in printed and "phase1 -> phase2: accuracy" in printed

    shipped = {"seeds": [0, 1], "runs": [{"seed": 0, "rows": {"base": {**results["runs"][0]["rows"]["base"], "length": 1.0}}},
                                         results["runs"][1]]}
    (tmp_path / "shipped.json").write_text(json.dumps(shipped))
    monkeypatch.setattr(demo, "SHIPPED", str(tmp_path / "shipped.json"))
    demo.main(["--seeds", "2", "--out", str(out)])  # a second run reuses every finished stage
    again = capsys.readouterr().out
    assert "seed 0: the same figures as in" in again and again.count(": NO (a run repeats bit for bit only on the machine") == 1 \
        and again.count(": yes") == 1
    assert "reusing" in again and "$ python train_rl.py" not in again and "$ python eval.py" not in again
    assert json.loads((out / "results.json").read_text()) == results

    demo.main(["--report", str(out / "results.json")])  # the README's table, from a results file
    assert capsys.readouterr().out.startswith("| | base | phase1 | phase2 | lambda1 | grpo |")


def test_results_table_gives_mean_and_sd_over_seeds():
    rows = lambda acc, length: {"accuracy": acc, "accuracy_stderr": 1.0, "length": length,
                                "levels": {"1": {"accuracy": acc, "accuracy_stderr": 1.0, "length": length}}}
    results = {"seeds": [0, 1], "runs": [{"seed": s, "rows": {"base": rows(70.0, 100.0), "phase1": rows(74.0 + 2 * s, 90.0)}}
                                         for s in (0, 1)]}
    assert demo.results_table(results).splitlines() == [
        "| | base | phase1 |", "|---|---|---|",
        "| accuracy % | 70.0 | 75.0 ± 1.4 |",  # 74 and 76: mean 75, sd sqrt(2); no spread, no ± 0
        "| length (tokens) | 100 | 90 |",
        "| level 1: acc % / length | 70.0 / 100 | 75.0 ± 1.4 / 90 |"]
    assert demo.change_lines(results) == ("base -> phase1: accuracy +5.0 points ± 1.4, mean length -10.0% ± 0.0; "
                                          "by level: L1 +5.0")
    # Padding per response (demo.evaluate counts it): a row of means over the seeds, once every row has it
    for s, run in enumerate(results["runs"]):
        run["rows"]["base"]["padding"] = {"re-checks": 2.0, "restatements": 0.5, "closings": 0.75}
        run["rows"]["phase1"]["padding"] = {"re-checks": 1.0 + s, "restatements": 0.25, "closings": 0.5 * s}
    assert demo.results_table(results).splitlines()[-1] == (
        "| re-checks / restatements / closings per response | 2.00 / 0.50 / 0.75 | 1.50 / 0.25 / 0.25 |")
    del results["runs"][1]["rows"]["phase1"]["padding"]  # a seed evaluated before it was counted: no row
    assert "per response" not in demo.results_table(results)


def test_the_mean_training_curve_carries_a_stopped_seed_at_its_last_value():
    # Seed 0's phase 2 stopped at step 38, seed 1's ran to 60: after step 38 seed 0 counts with its final 55.
    series = [([0, 20, 38], [100.0, 80.0, 55.0]), ([0, 20, 40, 60], [110.0, 100.0, 90.0, 60.0])]
    assert demo.plots.mean_curve(series) == ([0, 20, 38, 40, 60], [105.0, 90.0, 77.5, 72.5, 57.5])
    assert demo.plots.mean_curve(series[:1]) == series[0]
    # Train-batch curves start at step 1, held-out ones at 0: the mean starts where every seed has a value.
    assert demo.plots.mean_curve([([0, 5], [1.0, 2.0]), ([1, 5], [3.0, 4.0])]) == ([1, 5], [2.0, 3.0])
    log = [{"step": -1, "eval_accuracy": 0.5}, {"step": 0, "entropy": None}, {"step": 1, "entropy": 0.25}]
    assert demo.plots.curve(log, "eval_accuracy", "accuracy") == ([0], [0.5])
    assert demo.plots.curve(log, "eval_entropy", "entropy") == ([2], [0.25])  # None: not measured at step 0


def test_a_run_folder_from_another_base_settings_or_preset_is_not_reused(tmp_path, capsys):
    real = demo.run_stamp(demo.BASE, demo.SETTINGS["full"])
    other_preset = {**real, "presets": {**real["presets"], "phase2": {**real["presets"]["phase2"], "actor_lr": 1}}}
    for i, stamp in enumerate([{**real, "base_sha256": "0" * 64}, other_preset]):
        out = tmp_path / f"demo{i}"
        out.mkdir()
        (out / "demo.json").write_text(json.dumps(stamp))
        with pytest.raises(SystemExit) as e:
            demo.main(["--out", str(out)])
        named = ("base_sha256", "presets.phase2.actor_lr")[i]  # the entries that differ
        assert e.value.code == 2 and f"another base model, settings or presets ({named} differ); rerun with --fresh" \
            in capsys.readouterr().err
        assert not (out / "data").exists()  # refused before any stage ran


def test_phase_1_starts_from_the_given_base_model(tmp_path, monkeypatch):
    base = tmp_path / "my-base"
    shutil.copytree(demo.BASE, base)
    started = []

    def first_rl_phase(folder, flags, steps):  # stop the demo where phase 1 would start
        started.append(flags[flags.index("--init") + 1])
        raise SystemExit(0)

    monkeypatch.setattr(demo, "rl_phase", first_rl_phase)
    with pytest.raises(SystemExit):
        demo.main(["--base", str(base), "--out", str(tmp_path / "demo")])
    assert started == [str(base)]


def test_busy_cores_are_noted_unless_threads_are_given(tmp_path, monkeypatch, capsys):
    """Two 2-step toy runs at once on 2 cores took 250 s each with torch's 2 threads, 4.7 s with one: the demo says
    so when the load average shows other work, and says nothing when the cores are free or --threads is given."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(demo.torch, "get_num_threads", lambda: 2)
    for load, noted in [(0.9, False), (1.0, True), (3.2, True)]:
        monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
        assert (demo.shared_cores_note() is not None) == noted
    assert demo.shared_cores_note().startswith("note: the load average is 3.2 on 2 cores: if other work is still "
                                               "running, torch's 2 threads will wait on each other")
    monkeypatch.setattr(demo.torch, "get_num_threads", lambda: 1)  # one thread (taskset, a cpuset, --threads 1)
    assert demo.shared_cores_note() is None  # nothing to wait on
    monkeypatch.setattr(demo.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(demo, "quick", lambda *args: None)  # stop after the notes and the data
    monkeypatch.setattr(demo.torch, "set_num_threads", lambda n: None)
    for flags, noted in [([], True), (["--threads", "1"], False)]:
        demo.main(["--quick", "--out", str(tmp_path / "q"), *flags])
        assert ("note: the load average is 3.2" in capsys.readouterr().out) == noted


def test_claim_out_dir_accepts_its_own_stamp(tmp_path):
    stamp = {"base_sha256": "ab" * 32, **demo.SETTINGS["quick"]}
    demo.claim_out_dir(str(tmp_path / "d"), stamp)
    assert json.loads((tmp_path / "d" / "demo.json").read_text()) == stamp
    demo.claim_out_dir(str(tmp_path / "d"), stamp)  # the same stamp again: reuse allowed
    with pytest.raises(InputError):
        demo.claim_out_dir(str(tmp_path / "d"), {**stamp, "phase2_steps": 9})


@pytest.mark.slow
def test_quick_demo_shortens_responses_without_losing_accuracy(tmp_path, capsys):
    # --quick: phase 2 from the shipped phase-1 model, then both evaluated (about 3 minutes on 2 cores).
    out = tmp_path / "quick"
    demo.main(["--quick", "--out", str(out)])
    rows = json.loads((out / "results.json").read_text())["runs"][0]["rows"]
    before, after = rows["phase1"], rows["phase2"]
    assert after["length"] <= 0.8 * before["length"]  # at least 20% shorter
    noise = json.loads((out / "results.json").read_text())["change_stderr"]  # the paired standard error
    assert 0 < noise < math.hypot(before["accuracy_stderr"], after["accuracy_stderr"])  # paired: below the unpaired
    assert after["accuracy"] >= before["accuracy"] - 2 * noise  # not significantly less accurate
    printed = capsys.readouterr().out
    assert "skipped, shipped instead" in printed and "| mean length (tokens) |" in printed
    for name in ("training_curves.png", "tradeoff.png", "results.md"):
        assert os.path.getsize(out / name) > 0
    demo.main(["--report", str(out / "results.json")])  # --report reads --quick's results too
    assert capsys.readouterr().out.strip() == (out / "results.md").read_text().strip()


def test_report_of_a_quick_results_file():
    level = lambda length, acc: {"length": length, "accuracy": acc}
    rows = {"phase1": {"length": 100.0, "accuracy": 80.0, "accuracy_stderr": 3.0, "levels": {"1": level(50.0, 90.0)}},
            "phase2": {"length": 70.0, "accuracy": 79.0, "accuracy_stderr": 4.0, "levels": {"1": level(40.0, 91.0)}}}
    lines = demo.quick_report({"seeds": [0], "runs": [{"seed": 0, "rows": rows}], "change_stderr": 1.64}).splitlines()
    assert lines[2:] == ["| accuracy % | 80.0 ± 3.0 | 79.0 ± 4.0 | -1.0 (± 1.6) |",  # paired: not hypot(3, 4) = 5
                         "| mean length (tokens) | 100 | 70 | -30% |",
                         "| level 1: acc % / length | 90.0 / 50 | 91.0 / 40 | +1.0 / -20% |"]  # the others' order
    older = demo.quick_report({"seeds": [0], "runs": [{"seed": 0, "rows": rows}]})  # kept no paired figure
    assert "| -1.0 (± -) |" in older
    rows["phase1"]["padding"] = {"re-checks": 2.0, "restatements": 0.5, "closings": 0.0}
    rows["phase2"]["padding"] = {"re-checks": 1.5, "restatements": 0.125, "closings": 0.25}
    assert demo.quick_report({"seeds": [0], "runs": [{"seed": 0, "rows": rows}]}).splitlines()[-1] == (
        "| re-checks / restatements / closings per response | 2.00 / 0.50 / 0.00 | 1.50 / 0.12 / 0.25 | "
        "-25% / -75% / - |")  # (none before: no change to give)
    del rows["phase2"]["padding"]
    assert "per response" not in demo.quick_report({"seeds": [0], "runs": [{"seed": 0, "rows": rows}]})


def test_the_readme_and_results_md_show_the_shipped_results_file():
    # The README's table is `demo.py --report assets/results.json`'s table; RESULTS.md's first section has all of it.
    shipped = read_json(demo.SHIPPED)
    assert [r["seed"] for r in shipped["runs"]] == shipped["seeds"] == list(range(6))
    doc = lambda name: (Path(demo.HERE) / name).read_text()
    assert demo.results_table(shipped) in doc("README.md")
    assert demo.report(shipped) in doc("RESULTS.md")


def test_a_config_change_or_sharded_weights_change_the_stamp(tmp_path):
    """The stamp hashed model.safetensors alone: a changed config.json (rope_theta, say) reused the old stages,
    and a base with sharded weights crashed with a traceback."""
    base = tmp_path / "base"
    shutil.copytree(demo.BASE, base)
    stamp = lambda: demo.run_stamp(str(base), demo.SETTINGS["full"])
    first = stamp()
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "rope_theta": 2 * config.get("rope_theta", 10000.0)}))
    second = stamp()
    assert second != first
    os.rename(base / "model.safetensors", base / "model-00001-of-00001.safetensors")
    (base / "model.safetensors.index.json").write_text("{}")
    assert set(stamp()["base_sha256"]) == {"config.json", "model-00001-of-00001.safetensors",
                                           "model.safetensors.index.json"}


def test_a_stage_cut_short_resumes_where_the_demo_reruns(tmp_path, monkeypatch):
    """An evaluation or a phase-2 selection cut short leaves files the demo owns (it refused its own folder,
    --fresh included, as holding foreign files), an evaluation resumes, and an RL run whose last checkpoint
    swap a crash cut short resumes (it was started over with --overwrite, which deleted the finished run)."""
    from common import foreign_files, write_json
    for name in ["base_eval.json.tmp.json.partial.jsonl", "seed0/eval.json.tmp.json.partial.jsonl",
                 "seed0/phase2_set.jsonl.candidates.jsonl", "eval.json.tmp.json.partial.jsonl"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    assert foreign_files(str(tmp_path), demo.DEMO_FILES) == []
    calls = []

    def run(name, module, argv):  # eval.py or train_rl.py, as far as the demo sees them
        calls.append(argv)
        if "--ckpt" in argv:
            write_json({"results": {"a": {"accuracy": 0.5}}, "responses": {"a": []}}, argv[argv.index("--out") + 1])

    monkeypatch.setattr(demo, "run", run)
    assert demo.evaluate({"a": "ckpt"}, "test.jsonl", {"test_samples": 2}, str(tmp_path / "base_eval.json")) == {
        "a": {"accuracy": 0.5, "padding": {"re-checks": 0.0, "restatements": 0.0, "closings": 0.0}}}
    assert calls[-1][-1] == "--resume"
    # One begun by a demo that kept no responses: eval.py --resume would refuse its settings, so it starts over
    progress = tmp_path / "seed0" / "eval.json.tmp.json.partial.jsonl"
    progress.write_text(json.dumps({"settings": {"save_responses": False}}) + "\n")
    demo.evaluate({"a": "ckpt"}, "test.jsonl", {"test_samples": 2}, str(tmp_path / "seed0" / "eval.json"))
    assert "--resume" not in calls[-1] and not progress.exists()
    progress.write_text(json.dumps({"settings": {"save_responses": True}}) + "\n")
    demo.evaluate({"a": "ckpt"}, "test.jsonl", {"test_samples": 2}, str(tmp_path / "seed0" / "eval2.json"))
    assert "--resume" not in calls[-1]  # (another --out: its own progress file)
    os.rename(progress, tmp_path / "seed0" / "eval2.json.tmp.json.partial.jsonl")
    demo.evaluate({"a": "ckpt"}, "test.jsonl", {"test_samples": 2}, str(tmp_path / "seed0" / "eval2.json"))
    assert calls[-1][-1] == "--resume"  # begun with the responses kept: continued
    swapped = tmp_path / "phase1" / "checkpoint.tmp"  # the new checkpoint complete, not yet renamed
    swapped.mkdir(parents=True)
    (swapped / "state.json").write_text(json.dumps({"finished": True}))
    (swapped / ".complete").write_text("")
    demo.rl_phase(str(tmp_path / "phase1"), ["--phase", "1"], 2)
    assert calls[-1] == ["--resume", "--out", str(tmp_path / "phase1")]


def test_a_selection_with_too_few_problems_gives_the_demos_own_advice(tmp_path, monkeypatch, capsys):
    """select_problems.py's advice (--candidates, a wider range) names flags the demo does not take: the demo
    names its SETTINGS instead. Through the real select_problems.main, whose own one-line handler stood in
    the way (a stage's main inside the demo's passes its errors up)."""
    from common import cli
    calls = []
    monkeypatch.setattr(demo, "rl_phase", lambda folder, flags, steps: calls.append(folder) or "phase1-actor")

    def too_few(*args, **kwargs):  # the first thing select_problems.main reads: stands for its sampling
        raise select_problems.TooFewProblems("only 3 of 512 candidates have a pass rate in (0.4, 0.7); raise "
                                             "--candidates or widen the range")

    monkeypatch.setattr(select_problems, "read_problems", too_few)
    seed_stages = cli(lambda: demo.seed_stages(0, str(tmp_path), "base", ("train.jsonl", "test.jsonl"),
                                               demo.SETTINGS["full"], False))  # as inside demo.main
    with pytest.raises(SystemExit) as e:
        seed_stages()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: seed 0: the phase-2 set: only 3 of 512 candidates have a pass rate in (0.4, 0.7);")
    assert "SETTINGS at the top of demo.py" in err and "--candidates" not in err
    assert len(calls) == 1  # phase 1 ran; phase 2 did not start


def test_a_stage_stopped_by_ctrl_c_says_the_demo_command_continues(capsys):
    """train_rl.py's own line says --resume --out <that stage>, which continues that stage alone."""
    def stopped(argv):
        print("saved runs/x/checkpoint at step 3; continue with --resume --out runs/x")
        raise SystemExit(130)

    with pytest.raises(SystemExit) as e:
        demo.run("train_rl.py", type("Stage", (), {"main": staticmethod(stopped)}), ["--phase", "2"])
    assert e.value.code == 130
    assert "the same demo command continues it" in capsys.readouterr().err


def test_row_turns_fractions_into_percent():
    s = lambda acc, se, length: {"accuracy": acc, "accuracy_stderr": se, "length_mean": length,
                                 "length_mean_correct": 1.0}
    summary = {"all": s(0.75, 0.05, 123.0), "levels": {"1": s(0.5, 0.1, 50.0)}}
    assert demo.row(summary) == {"accuracy": 75.0, "accuracy_stderr": 5.0, "length": 123.0,
                                 "levels": {"1": {"accuracy": 50.0, "accuracy_stderr": 10.0, "length": 50.0}}}
    padding = {"re-checks": 1.5, "restatements": 0.25, "closings": 0.5}  # counted per response, kept as it is
    assert demo.row({**summary, "padding": padding}) == {**demo.row(summary), "padding": padding}


def test_seed_stages_passes_the_seed_and_phase_2s_steps_on(tmp_path, monkeypatch):
    calls = []

    def rl_phase(folder, flags, steps):
        calls.append((os.path.basename(folder), flags, steps))
        if folder.endswith("phase2"):  # phase 2 stopped early, at step 7 of its cap
            os.makedirs(os.path.join(folder, "checkpoint"), exist_ok=True)
            with open(os.path.join(folder, "checkpoint", "state.json"), "w") as f:
                json.dump({"step": 7}, f)
        return folder + "/actor"

    monkeypatch.setattr(demo, "rl_phase", rl_phase)
    monkeypatch.setattr(demo, "run", lambda name, module, argv: None)
    (tmp_path / "seed1").mkdir()
    (tmp_path / "seed1" / "phase2_set.jsonl").write_text("")
    settings = {**demo.SETTINGS["full"], "phase2_steps": 150}
    demo.seed_stages(1, str(tmp_path), "base", ("train.jsonl", "test.jsonl"), settings, True)
    assert [(name, steps) for name, _, steps in calls] == [("phase1", 90), ("phase2", 150), ("lambda1", 7), ("grpo", 7)]
    for _, flags, _ in calls:
        assert flags[flags.index("--seed") + 1] == "1"


def test_a_settings_change_changes_the_stamp(monkeypatch, tmp_path):
    base = demo.run_stamp(demo.BASE, demo.SETTINGS["full"])
    assert demo.run_stamp(demo.BASE, {**demo.SETTINGS["full"], "phase2_steps": 151}) != base
    demo.claim_out_dir(str(tmp_path), base)
    demo.claim_out_dir(str(tmp_path), demo.run_stamp(demo.BASE, demo.SETTINGS["full"]))  # read back: the same
    real_parser = demo.train_rl.build_parser

    def edited_default():  # a flag default edited in train_rl.py, one that no toy preset sets
        parser = real_parser()
        parser.set_defaults(clip_eps=0.3)
        return parser

    # A flag added since, at its train_rl.NEW_FLAGS value (what the older code did), is the same run: a stamp
    # without it is reused (adding a flag forced an 11-minute --fresh); at another value it differs
    without = lambda flags: {k: v for k, v in flags.items() if k != "keep_every"}
    older = {**base, "presets": {phase: without(flags) for phase, flags in base["presets"].items()}}
    (tmp_path / "demo.json").write_text(json.dumps(older))
    demo.claim_out_dir(str(tmp_path), base)
    monkeypatch.setitem(demo.train_rl.NEW_FLAGS, "keep_every", 5)
    with pytest.raises(InputError, match=r"presets \(presets.phase1.keep_every, presets.phase2.keep_every differ\)"):
        demo.claim_out_dir(str(tmp_path), base)
    monkeypatch.setitem(demo.train_rl.NEW_FLAGS, "keep_every", 0)
    (tmp_path / "demo.json").write_text(json.dumps(base))

    monkeypatch.setattr(demo.train_rl, "build_parser", edited_default)
    assert demo.run_stamp(demo.BASE, demo.SETTINGS["full"])["presets"]["phase1"]["clip_eps"] == 0.3
    assert base["presets"]["phase1"]["phase"] == 1
    with pytest.raises(InputError, match=r"presets \(presets.phase1.clip_eps, presets.phase2.clip_eps differ\)"):
        demo.claim_out_dir(str(tmp_path), demo.run_stamp(demo.BASE, demo.SETTINGS["full"]))


def test_a_stamp_entry_only_the_new_or_only_the_old_stamp_has_differs():
    """A setting or flag added since the folder's demo ran (in the new stamp alone) changes the run as much as one
    removed (in the old stamp alone): both are named."""
    assert demo.differences({"a": 1}, {"a": 1, "b": 2}) == ["b"]
    assert demo.differences({"a": 1, "b": 2}, {"a": 1}) == ["b"]
    assert demo.differences({"presets": {"phase1": {"x": 1}}}, {"presets": {"phase1": {"x": 1, "y": 0}}}) == \
        ["presets.phase1.y"]
    assert demo.differences({"a": {"b": 1}}, {"a": {"b": 1}}) == []


def test_time_breakdown_is_the_mean():
    assert demo.time_breakdown([{"time_sample": 1.0, "time_update": 3.0}, {"time_sample": 2.0, "time_update": 5.0}]) \
        == "sample 1.50, update 4.00"
    resumed = [{"time_sample": 1.0}, {"time_sample": 2.0, "time_wall": 4.0}, {"time_sample": 3.0, "time_wall": 7.0}]
    assert demo.time_breakdown(resumed) == "sample 2.00, wall 5.50"  # the first came back from its checkpoint


def test_an_unfinished_run_resumes_and_a_new_one_overwrites(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "run", lambda name, module, argv: calls.append(argv))
    (tmp_path / "a" / "checkpoint").mkdir(parents=True)
    (tmp_path / "a" / "checkpoint" / "state.json").write_text(json.dumps({"finished": False, "step": 3}))
    demo.rl_phase(str(tmp_path / "a"), ["--phase", "1"], 6)
    demo.rl_phase(str(tmp_path / "b"), ["--phase", "1"], 6)
    assert calls == [["--resume", "--out", str(tmp_path / "a")],
                     ["--phase", "1", "--steps", "6", "--out", str(tmp_path / "b"), "--overwrite"]]


def test_evaluate_runs_only_the_models_not_yet_evaluated(tmp_path, monkeypatch):
    """Figures kept from a version that wrote no per-problem pass rates count as not evaluated ("c"). Each new
    model's padding per response is counted in its responses (b's two: 1 and 0 re-checks, 1 and 0 restatements,
    0 and 0 closings; c's one: 2, 0, 1); those kept ("a") stay as they were."""
    from common import write_json
    calls = []
    texts = {"B": ["We need 1+2. Step by step. 1+2=3. check 1+2=3 ok. \\boxed{3}", "1+2=3. \\boxed{3}"],
             "C": ["1+2=3. check 1+2=3 ok. 3*2=6. check 3*2=6 ok. So the answer is 6. \\boxed{6}"]}

    def run(name, module, argv):
        calls.append(argv)
        names = argv[argv.index("--names") + 1 : argv.index("--data")]
        ckpts = argv[argv.index("--ckpt") + 1 : argv.index("--names")]
        write_json({"results": {n: {"accuracy": 0.25, "pass_rates": {}} for n in names},
                    "responses": {n: [{"text": t} for t in texts[c]] for n, c in zip(names, ckpts)}},
                   argv[argv.index("--out") + 1])

    monkeypatch.setattr(demo, "run", run)
    write_json({"results": {"a": {"accuracy": 0.5, "pass_rates": {}}, "c": {"accuracy": 0.5}}}, str(tmp_path / "e.json"))
    got = demo.evaluate({"a": "A", "b": "B", "c": "C"}, "t.jsonl", {"test_samples": 2}, str(tmp_path / "e.json"))
    counted = lambda checks, restatements, closings: {"re-checks": checks, "restatements": restatements,
                                                      "closings": closings}
    assert got == {"a": {"accuracy": 0.5, "pass_rates": {}},
                   "b": {"accuracy": 0.25, "pass_rates": {}, "padding": counted(0.5, 0.5, 0.0)},
                   "c": {"accuracy": 0.25, "pass_rates": {}, "padding": counted(2.0, 0.0, 1.0)}}
    assert "--save-responses" in calls[0]
    assert json.loads((tmp_path / "e.json").read_text())["results"] == got  # kept, without the responses
    assert len(calls) == 1 and calls[0][calls[0].index("--ckpt") + 1: calls[0].index("--names")] == ["B", "C"]


def figure_of(monkeypatch, draw):
    figs = []
    monkeypatch.setattr(plots, "save", lambda fig, out: figs.append(fig))
    draw()
    return figs[0]


def test_training_curves_plot_held_out_percent_against_step_plus_one(monkeypatch):
    phase1 = [{"step": -1, "eval_accuracy": 0.4, "eval_length": 12.0},
              {"step": 0, "accuracy": 0.5, "length_mean": 10.0},
              {"step": 1, "accuracy": 0.6, "length_mean": 8.0, "eval_accuracy": 0.45, "eval_length": 9.0}]
    phase2 = [{"step": 0, "accuracy": 0.7, "length_mean": 6.0}, {"step": 1, "accuracy": 0.8, "length_mean": 5.0}]
    fig = figure_of(monkeypatch, lambda: plots.plot_training({"phase1": [phase1], "phase2": [phase2]}, "x.png"))
    acc, length = fig.axes
    data = lambda ax: [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines]
    # phase 1: held-out figures after 0 and 2 steps (x = step + 1); phase 2 (its batches' figures) at x = 3, 4
    assert data(acc) == [([0, 2], [40.0, 45.0])] * 2 + [([3, 4], [70.0, 80.0])] * 2
    assert data(length) == [([0, 2], [12.0, 9.0])] * 2 + [([3, 4], [6.0, 5.0])] * 2


def test_training_curves_say_whether_they_show_held_out_problems_or_training_batches(monkeypatch):
    """--quick's phase 2 has no held-out evaluation: its curves are the training batches (32 level-4/5 problems,
    accuracy near 50%), which a title of "held out" would have students compare with the held-out table's 78%."""
    batches = [{"step": 0, "accuracy": 0.5, "length_mean": 10.0}, {"step": 1, "accuracy": 0.6, "length_mean": 8.0}]
    held = [{"step": -1, "eval_accuracy": 0.4, "eval_length": 12.0}, {**batches[1], "eval_accuracy": 0.5, "eval_length": 9.0}]
    title = lambda logs: [ax.get_title() for ax in figure_of(monkeypatch, lambda: plots.plot_training(logs, "x.png")).axes]
    assert title({"phase2": [batches]}) == ["accuracy (training batches)", "response length (training batches)"]
    assert title({"phase1": [held]}) == ["accuracy (held-out problems)", "response length (held-out problems)"]
    assert "else training batches" in title({"phase1": [held], "phase2": [batches]})[0]


def test_tradeoff_plots_mean_length_against_mean_accuracy(monkeypatch):
    row = lambda acc, length: {"accuracy": acc, "length": length,
                               "levels": {"1": {"accuracy": acc + 10, "length": length / 2}}}
    results = {"runs": [{"rows": {"base": row(70.0, 100.0)}}, {"rows": {"base": row(74.0, 110.0)}}]}
    fig = figure_of(monkeypatch, lambda: plots.plot_tradeoff(results, "x.png"))
    points = [(list(l.get_xdata()), list(l.get_ydata())) for l in fig.axes[0].lines if l.get_marker() in ("o", "x")]
    assert points == [([105.0], [72.0]), ([52.5], [82.0])]


def test_a_plot_whose_save_fails_leaves_neither_a_file_nor_a_temp_copy(tmp_path):
    class Figure:  # matplotlib's savefig writes part of the PNG, then fails (a full disk, say)
        def savefig(self, f, **kwargs):
            (open(f, "wb") if isinstance(f, str) else f).write(b"\x89PNG partial")  # a path or a file, as matplotlib
            raise OSError(28, "No space left on device")

    (tmp_path / "curves.png").write_bytes(b"the last good plot")
    with pytest.raises(OSError):
        plots.save(Figure(), str(tmp_path / "curves.png"))
    assert sorted(os.listdir(tmp_path)) == ["curves.png"]
    assert (tmp_path / "curves.png").read_bytes() == b"the last good plot"
