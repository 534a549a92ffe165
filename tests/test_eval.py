import hashlib
import json
import math
import os
import random
import statistics

import pytest

import demo
import eval as evaluation
import select_problems
from eval import evaluate, markdown_table, summarize
from reward import extract_answer, grade, is_equiv
from sample import generate, load_for_inference
from tasks import DataError, new_tokens_that_fit, prompt_text
from tokenizer import Tokenizer


def write_problems(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


PROBLEMS = [  # the tiny policy answers \boxed{1} or \boxed{2} to every prompt
    {"id": "a", "problem": "1", "answer": "1", "level": 1},
    {"id": "b", "problem": "1", "answer": "2", "level": 2},
    {"id": "c", "problem": "1", "answer": "3", "level": 2},  # never right
]


def test_figures_match_a_hand_count_of_the_sampled_responses(half_right):
    model, tok = load_for_inference(str(half_right))
    summary, records = evaluate(model, tok, PROBLEMS, samples=6, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=0)
    assert len(records) == 18
    # The same draw straight from the sampler (one chunk, same seed) is the oracle for texts and lengths:
    # re-encoding a text is not, since a tiny model at T = 1 can emit bytes that are not valid UTF-8.
    prompts = [tok.encode(prompt_text(p["problem"], tok)) for p in PROBLEMS for _ in range(6)]
    draws = generate(model, prompts, 12, 1.0, top_p=1.0, eos_id=tok.eos_id, pad_id=tok.pad_id, seed=0)
    # Re-judge every response from its text, then recompute every figure by hand.
    gold = {p["id"]: p["answer"] for p in PROBLEMS}
    for r, c in zip(records, draws):
        assert r["length"] == len(c.tokens) and r["finish_reason"] == c.finish_reason  # EOS counts as a token
        assert r["text"] == tok.decode(c.tokens, skip_special=True)
        judged = r["finish_reason"] == "eos" and is_equiv(extract_answer(r["text"]), gold[r["problem_id"]])
        assert r["correct"] == judged
    per_problem = [sum(r["correct"] for r in records if r["problem_id"] == pid) / 6 for pid in "abc"]
    assert 0 < per_problem[0] < 1 and per_problem[2] == 0  # a real mix, not a degenerate case
    s = summary["all"]
    assert s["accuracy"] == pytest.approx(sum(per_problem) / 3)
    assert s["accuracy_stderr"] == pytest.approx(statistics.stdev(per_problem) / math.sqrt(3))
    lengths = [r["length"] for r in records]
    assert s["length_mean"] == pytest.approx(sum(lengths) / 18)
    assert s["length_median"] == statistics.median(lengths)
    right = [r["length"] for r in records if r["correct"]]
    assert s["length_mean_correct"] == pytest.approx(sum(right) / len(right))
    assert s["cut_off_share"] == pytest.approx(sum(r["finish_reason"] == "length" for r in records) / 18)
    level2 = [r for r in records if r["level"] == 2]
    assert summary["levels"]["2"]["accuracy"] == pytest.approx((per_problem[1] + per_problem[2]) / 2)
    assert summary["levels"]["2"]["length_mean"] == pytest.approx(sum(r["length"] for r in level2) / 12)


def test_responses_stop_at_every_eos_id_of_the_tokenizer(half_right):
    """A tokenizer's eos_ids all end a response; here "{" is made one, so "\\boxed{" ends there, unanswered."""
    model, tok = load_for_inference(str(half_right))
    tok.eos_ids = (tok.eos_id, ord("{"))
    summary, records = evaluate(model, tok, PROBLEMS[:1], samples=16, temperature=1.0, top_p=1.0, max_new_tokens=12)
    assert sum(r["text"].endswith("{") and r["finish_reason"] == "eos" for r in records) >= 12
    assert all("{" not in r["text"][:-1] for r in records) and summary["all"]["accuracy"] == 0


def test_cut_off_responses_count_as_wrong_and_are_counted():
    records = [
        {"problem_id": "x", "level": 1, "length": 10, "finish_reason": "eos", "correct": True},
        {"problem_id": "x", "level": 1, "length": 30, "finish_reason": "length", "correct": False},
        {"problem_id": "y", "level": 1, "length": 20, "finish_reason": "eos", "correct": False},
        {"problem_id": "y", "level": 1, "length": 20, "finish_reason": "eos", "correct": False},
    ]
    s = summarize(records)
    assert s["accuracy"] == 0.25 and s["cut_off_share"] == 0.25
    assert s["accuracy_stderr"] == pytest.approx(statistics.stdev([0.5, 0.0]) / math.sqrt(2))
    assert (s["length_mean"], s["length_mean_correct"], s["length_mean_incorrect"]) == (20, 10, pytest.approx(70 / 3))
    assert grade("\\boxed{1}", "1", finished=False) == "no_answer"  # how rollout() judges a cut-off response


def test_one_problem_has_no_standard_error():
    """It is undefined, not 0: a level that --limit gave one problem showed 0.0 ± 0.0, the least certain figure
    of the table as if it were certain."""
    records = [{"problem_id": "p", "level": 3, "length": 7, "finish_reason": "eos", "correct": c} for c in (0, 0)]
    s = summarize(records)
    assert s["accuracy"] == 0.0 and s["accuracy_stderr"] is None
    assert "| 0.0 ± - |" in markdown_table({"m": {"all": s, "levels": {"3": s}}})
    assert demo.row({"all": s, "levels": {"3": s}})["levels"]["3"]["accuracy_stderr"] is None


def test_markdown_table_layout():
    one = {"accuracy": 0.5, "accuracy_stderr": 0.1, "length_mean": 42.0}
    results = {"base": {"all": one, "levels": {"1": one}}, "rl": {"all": one, "levels": {}}}
    assert markdown_table(results).splitlines() == [
        "| | base: acc % | base: mean len | rl: acc % | rl: mean len |",
        "|---|---|---|---|---|",
        "| all | 50.0 ± 10.0 | 42 | 50.0 ± 10.0 | 42 |",
        "| level 1 | 50.0 ± 10.0 | 42 | - | - |",
    ]


def test_markdown_table_orders_levels_by_number():
    """Levels are JSON keys, text: "10" sorts before "2" as text, after it as a number."""
    one = {"accuracy": 0.5, "accuracy_stderr": None, "length_mean": 42.0}
    table = markdown_table({"m": {"all": one, "levels": {"10": one, "2": one}}})
    assert [line.split(" |")[0] for line in table.splitlines()[2:]] == ["| all", "| level 2", "| level 10"]


def test_problems_without_a_level_among_levelled_ones_get_their_own_row():
    """MATH's "Level ?" problems (a level of None beside levels 1-5) counted only in "all"."""
    record = lambda pid, level, correct: {"problem_id": pid, "level": level, "length": 10 * (1 + correct),
                                          "finish_reason": "eos", "correct": correct}
    records = [record("a", 5, 1), record("a", 5, 0), record("b", None, 1), record("b", None, 1), record("c", None, 0),
               record("c", None, 0)]
    summary = evaluation.summarize_by_level(records)
    assert (summary["no_level"]["accuracy"], summary["no_level"]["length_mean"]) == (0.5, 15)
    assert list(summary["levels"]) == ["5"] and summary["all"]["accuracy"] == pytest.approx(0.5)
    assert markdown_table({"m": summary}).splitlines()[-2:] == ["| level 5 | 50.0 ± - | 15 |",
                                                                "| no level | 50.0 ± 50.0 | 15 |"]
    assert "no_level" not in evaluation.summarize_by_level([r for r in records if r["level"] is None])  # GSM8K


def test_cli_writes_json_and_table(half_right, tmp_path, capsys):
    data = write_problems(tmp_path / "p.jsonl", PROBLEMS)
    out = tmp_path / "r.json"
    evaluation.main(["--ckpt", str(half_right), str(half_right), "--names", "a", "b", "--data", str(data),
                     "--samples", "2", "--max-new-tokens", "12", "--out", str(out)])
    got = json.loads(out.read_text())
    assert set(got["results"]) == {"a", "b"}
    assert got["results"]["a"] == got["results"]["b"]  # same weights, same seed: same figures
    assert got["settings"]["samples"] == 2
    assert got["settings"]["dtype"] == "fp32"  # one for every column: bf16 on a GPU, fp32 here, whatever is stored
    assert evaluation.dtype_name(None, "cuda:1") == "bf16" and evaluation.dtype_name("fp16", "cpu") == "fp16"
    assert "| all |" in capsys.readouterr().out


def test_the_default_cut_off_is_what_the_context_leaves_at_most_the_papers(half_right, tmp_path, capsys):
    # The tiny policy's context is 64 tokens and the longest prompt here, "Q: 12\nA: ", 9: 55 new tokens are left.
    # The default was a fixed 512, which the toy's context of 512 refused.
    data = write_problems(tmp_path / "p.jsonl", [*PROBLEMS, {"id": "d", "problem": "12", "answer": "1", "level": 1}])
    evaluation.main(["--ckpt", str(half_right), "--data", str(data), "--samples", "1", "--out", str(tmp_path / "r.json")])
    assert "--max-new-tokens 55" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["max_new_tokens"] == 55
    assert new_tokens_that_fit(PROBLEMS, Tokenizer.byte_level(), 100_000) == 8192  # a long context: the paper's
    assert new_tokens_that_fit(PROBLEMS, Tokenizer.byte_level(), 9) == 1
    with pytest.raises(DataError, match="problem 'a': its prompt of 8 tokens leaves no room for a response in the "
                                        "model's context of 8"):
        new_tokens_that_fit(PROBLEMS, Tokenizer.byte_level(), 8)


def test_limit_draws_from_every_level_not_the_first_lines(half_right, tmp_path, capsys):
    sorted_by_level = [{"id": f"L{lv}-{i}", "problem": "1", "answer": "1", "level": lv} for lv in range(1, 6)
                       for i in range(4)]
    data = write_problems(tmp_path / "p.jsonl", sorted_by_level)
    out = tmp_path / "r.json"
    evaluation.main(["--ckpt", str(half_right), "--data", str(data), "--limit", "5", "--samples", "1",
                     "--max-new-tokens", "12", "--out", str(out), "--save-responses"])
    got = json.loads(out.read_text())
    ids = {r["problem_id"] for r in got["responses"][str(half_right)]}
    assert ids == {p["id"] for p in evaluation.held_out(str(data), 5, 0)}  # the same draw as train_rl's held out
    assert len(ids) == 5 and len({i.split("-")[0] for i in ids}) > 1 and got["settings"]["limit"] == 5
    evaluation.main(["--ckpt", str(half_right), "--data", str(data), "--limit", "50", "--samples", "1",
                     "--max-new-tokens", "12"])
    assert f"note: --limit 50, but {data} holds 20 problems: evaluating them all" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1", "answer": "1"}\n{not json\n')
    for data, message in [(tmp_path / "missing.jsonl", "no such problems file"), (bad, "bad.jsonl:2: not valid JSON")]:
        with pytest.raises(SystemExit) as e:
            evaluation.main(["--ckpt", "x", "--data", str(data)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_progress_in_a_log_file_is_a_line_per_quarter_without_carriage_returns(capsys):
    show = evaluation.progress_printer("base")  # pytest's captured stderr is not a terminal
    for done in (64, 100, 128, 192, 200, 256):
        show(done, 256)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == [f"  base: {n}/256 responses" for n in (64, 128, 192, 256)]


def test_an_interrupted_evaluation_resumes_where_it_stopped_and_ends_as_one_that_ran_through(half_right, tmp_path,
                                                                                                  monkeypatch, capsys):
    """--batch-size 1 samples in chunks of 4 responses; the run is cut in its second chunk, its progress file
    gets a torn last line as a crash mid-write would leave, and --resume samples only what is missing."""
    data = write_problems(tmp_path / "p.jsonl", PROBLEMS)
    flags = lambda out: ["--ckpt", str(half_right), str(half_right), "--names", "a", "b", "--data", str(data),
                         "--samples", "4", "--max-new-tokens", "12", "--batch-size", "1", "--save-responses",
                         "--out", str(out)]
    evaluation.main(flags(tmp_path / "straight.json"))
    assert not (tmp_path / "straight.json.partial.jsonl").exists()  # deleted once the figures are written

    calls, real_generate = [], evaluation.generate
    def generate(model, prompts, *args, **kwargs):
        calls.append(len(prompts))
        if len(calls) == 5:  # a's three chunks, then b's second
            raise KeyboardInterrupt
        return real_generate(model, prompts, *args, **kwargs)
    monkeypatch.setattr(evaluation, "generate", generate)
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as e:
        evaluation.main(flags(out))
    assert e.value.code == 130 and "the same command with --resume continues" in capsys.readouterr().err
    partial = tmp_path / "r.json.partial.jsonl"
    lines = [json.loads(line) for line in partial.read_text().splitlines()]
    assert [("index" in r, r.get("checkpoint")) for r in lines[1:]] == [(False, "a")] + [(True, "a")] * 12 + [
        (False, "b")] + [(True, "b")] * 4
    with open(partial, "a") as f:
        f.write('{"checkpoint": "b", "ind')

    with pytest.raises(SystemExit):  # without --resume it refuses to start over on top of it
        evaluation.main(flags(out))
    assert "add --resume to continue it, or delete it to start over" in capsys.readouterr().err
    calls.clear()
    (tmp_path / "moved").mkdir()  # the problems file is checked by content: given by another path, it resumes
    moved = data.rename(tmp_path / "moved" / "p.jsonl")
    evaluation.main([str(moved) if f == str(data) else f for f in flags(out)] + ["--resume"])
    assert calls == [4, 4]  # b's last two chunks, nothing else
    assert "b: 4 responses kept from" in capsys.readouterr().err
    resumed, straight = json.loads(out.read_text()), json.loads((tmp_path / "straight.json").read_text())
    assert resumed["settings"].pop("data") == str(moved) and straight["settings"].pop("data") == str(data)
    assert resumed == straight
    assert not partial.exists()


def test_resume_refuses_other_settings_a_changed_checkpoint_and_nothing_to_resume(half_right, tmp_path, capsys):
    import shutil
    data = write_problems(tmp_path / "p.jsonl", PROBLEMS)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(half_right, ckpt)
    out = tmp_path / "r.json"
    flags = ["--ckpt", str(ckpt), "--data", str(data), "--max-new-tokens", "12", "--out", str(out)]
    evaluation.main(flags)
    capsys.readouterr()
    problems_sha256 = hashlib.sha256(json.dumps(evaluation.read_problems(str(data)), sort_keys=True).encode()).hexdigest()
    first_line = '{"settings": ' + json.dumps({**json.loads(out.read_text())["settings"], "save_responses": False,
                                               "problems_sha256": problems_sha256})
    for partial, extra, message in [
        (None, ["--resume"], "--resume: there is no unfinished evaluation to continue"),
        (first_line + "}\n", ["--resume", "--samples", "2"], "other settings (samples 4 then, 2 now)"),
        (first_line + "}\n", ["--resume", "--seed", "1"], "other settings (seed 0 then, 1 now)"),
        (first_line.replace(problems_sha256, "0" * 64) + "}\n", ["--resume"], "other settings (problems_sha256 "),
        (first_line + '}\n{"checkpoint": "' + str(ckpt) + '", "source": ["elsewhere", []]}\n', ["--resume"],
         f"checkpoint {str(ckpt)!r} is not what it was then"),
        ("[1]\n", ["--resume"], "not an eval.py progress file (its first line holds no settings)"),
        (first_line + '}\n{"index": 0}\n', ["--resume"], "not an eval.py progress file (a line without its fields)"),
    ]:
        if partial is not None:
            (tmp_path / "r.json.partial.jsonl").write_text(partial)
        with pytest.raises(SystemExit) as e:
            evaluation.main(flags + extra)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit):
        evaluation.main(["--ckpt", str(ckpt), "--data", str(data), "--resume"])
    assert "--resume continues the evaluation into --out: give --out FILE.json" in capsys.readouterr().err
    # The checkpoint line as eval.py writes it, by hand: the folder, then [file, bytes, modified ns] of its config
    # and weights. Accepted as it is; refused once the weights file is rewritten (a new modification time).
    stat = lambda name: [name, (ckpt / name).stat().st_size, (ckpt / name).stat().st_mtime_ns]
    partial = first_line + '}\n' + json.dumps({"checkpoint": str(ckpt), "source": [
        str(ckpt), [stat("config.json"), stat("model.safetensors"), stat("tokenizer_bytes.json")]]}) + "\n"
    (tmp_path / "r.json.partial.jsonl").write_text(partial)
    evaluation.main(flags + ["--resume"])
    assert "is not what it was" not in capsys.readouterr().err
    (tmp_path / "r.json.partial.jsonl").write_text(partial)
    weights = (ckpt / "model.safetensors").stat()
    os.utime(ckpt / "model.safetensors", ns=(weights.st_atime_ns, weights.st_mtime_ns + 1_000_000_000))
    with pytest.raises(SystemExit) as e:
        evaluation.main(flags + ["--resume"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"checkpoint {str(ckpt)!r} is not what it was then (another folder, or its files changed)" in err
    # A tokenizer file added or changed since is a change too: generation_config.json's EOS ids end responses.
    os.utime(ckpt / "model.safetensors", ns=(weights.st_atime_ns, weights.st_mtime_ns))
    (tmp_path / "r.json.partial.jsonl").write_text(partial)
    (ckpt / "generation_config.json").write_text('{"eos_token_id": 256}')
    with pytest.raises(SystemExit):
        evaluation.main(flags + ["--resume"])
    assert "is not what it was then" in capsys.readouterr().err


def test_a_right_answer_cut_off_before_its_eos_is_wrong(half_right):
    """9 new tokens hold "\\boxed{1}" but not the EOS after it: every response is cut off, and the two that
    read \\boxed{1} (gold "1") are still wrong, as a cut-off response has given no final answer."""
    model, tok = load_for_inference(str(half_right))
    summary, records = evaluate(model, tok, PROBLEMS[:1], samples=8, temperature=1.0, top_p=1.0, max_new_tokens=9,
                                seed=0)
    assert [r["text"] for r in records].count("\\boxed{1}") == 2
    assert all(r["finish_reason"] == "length" and not r["correct"] for r in records)
    assert summary["all"]["accuracy"] == 0.0 and summary["all"]["cut_off_share"] == 1.0


def test_median_and_spread_of_lengths_by_hand():
    """Correct lengths 10, 14, 30: median 14 (the mean is 18), CV = sample stdev sqrt((64 + 16 + 144) / 2) / 18
    = 0.5879 (the population stdev would give 0.4801); wrong lengths 30, 20, 20: median 20 (mean 23.3). One
    correct response has no spread (None), not 0."""
    rec = lambda pid, length, correct: {"problem_id": pid, "level": 1, "length": length, "finish_reason": "eos",
                                        "correct": correct}
    s = summarize([rec("x", 10, True), rec("x", 14, True), rec("w", 30, True), rec("y", 30, False),
                   rec("y", 20, False), rec("z", 20, False)])
    assert (s["length_median_correct"], s["length_median_incorrect"], s["length_median"]) == (14, 20, 20)
    assert s["length_cv_correct"] == pytest.approx(0.587945, abs=1e-6)
    one = summarize([rec("x", 10, True), rec("y", 30, False), rec("y", 20, False)])
    assert (one["length_median_correct"], one["length_median_incorrect"], one["length_cv_correct"]) == (10, 25, None)
    assert one["accuracy"] == 0.5  # pass@1 is a mean over problems (1 and 0), not over the responses (1 in 3)
    none = summarize([rec("y", 30, False)])
    assert (none["length_median_correct"], none["length_cv_correct"]) == (None, None)


def test_held_out_draws_with_its_seed(tmp_path):
    """Each seed its own subset: train_rl.py runs of other seeds evaluate on other problems. The oracle is the
    same shuffle of the line numbers."""
    data = write_problems(tmp_path / "p.jsonl", [{"id": str(i), "problem": "1", "answer": "1", "level": 1}
                                                 for i in range(15)])
    for seed in (0, 1):
        order = list(range(15))
        random.Random(seed).shuffle(order)
        assert [p["id"] for p in evaluation.held_out(str(data), 3, seed)] == [str(i) for i in order[:3]]
    assert evaluation.held_out(str(data), 3, 0) != evaluation.held_out(str(data), 3, 1)


def test_the_held_out_record_is_the_evaluation_at_top_p_0_95(half_right):
    """train_rl.py logs eval_record: the same figures as eval.py at top-p 0.95 (the paper's), overall and per
    level. At temperature 1.5 the lengths vary (a level's mean is not its median) and top-p 1 would give another
    mean length (11.46 against 11.17), so a wrong figure or top-p is seen."""
    model, tok = load_for_inference(str(half_right))
    rec = evaluation.eval_record(model, tok, PROBLEMS, samples=8, temperature=1.5, max_new_tokens=12, seed=0,
                                 batch_size=64)
    summary, _ = evaluate(model, tok, PROBLEMS, 8, 1.5, 0.95, 12, 0)
    assert rec == {"eval_accuracy": summary["all"]["accuracy"], "eval_length": summary["all"]["length_mean"],
                   "eval_accuracy_L1": summary["levels"]["1"]["accuracy"],
                   "eval_length_L1": summary["levels"]["1"]["length_mean"],
                   "eval_accuracy_L2": summary["levels"]["2"]["accuracy"],
                   "eval_length_L2": summary["levels"]["2"]["length_mean"]}
    assert all(s["length_mean"] != s["length_median"] for s in summary["levels"].values())
    assert evaluate(model, tok, PROBLEMS, 8, 1.5, 1.0, 12, 0)[0]["all"]["length_mean"] != rec["eval_length"]


def test_a_resume_after_a_torn_line_can_itself_be_resumed(half_right, tmp_path, monkeypatch, capsys):
    """--resume drops the torn last line and rewrites the file: the records it then appends start on a line of
    their own. Else they were glued to the torn line, which a second --resume refused as not JSON."""
    data = write_problems(tmp_path / "p.jsonl", PROBLEMS)
    flags = lambda out: ["--ckpt", str(half_right), "--data", str(data), "--samples", "4", "--max-new-tokens", "12",
                         "--batch-size", "1", "--save-responses", "--out", str(out)]
    evaluation.main(flags(tmp_path / "straight.json"))
    calls, stop_at, real_generate = [], [2], evaluation.generate

    def generate(model, prompts, *args, **kwargs):  # chunks of 4 responses; Ctrl-C at the stop_at-th call
        calls.append(len(prompts))
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return real_generate(model, prompts, *args, **kwargs)

    monkeypatch.setattr(evaluation, "generate", generate)
    out, partial = tmp_path / "r.json", tmp_path / "r.json.partial.jsonl"
    with pytest.raises(SystemExit):
        evaluation.main(flags(out))  # one chunk of 4 kept
    with open(partial, "a") as f:
        f.write('{"checkpoint": "b", "ind')
    calls.clear()
    with pytest.raises(SystemExit):
        evaluation.main(flags(out) + ["--resume"])  # the second chunk kept, the third cut
    lines = partial.read_text().splitlines()
    assert all(json.loads(line) for line in lines) and len(lines) == 2 + 8  # settings, source, 8 records
    calls.clear()
    stop_at[0] = 0
    evaluation.main(flags(out) + ["--resume"])
    assert calls == [4]  # the third chunk only
    assert json.loads(out.read_text()) == json.loads((tmp_path / "straight.json").read_text())
    capsys.readouterr()


def test_the_paired_standard_error_is_that_of_the_per_problem_differences():
    """Two models on the same problems: b - a per problem is 0, 0.5, 0.5, whose mean has the standard error
    sqrt(1/12) / sqrt(3) = 1/6; the unpaired sqrt(se_a^2 + se_b^2) would say 0.42."""
    a, b = {"p1": 1.0, "p2": 0.5, "p3": 0.0}, {"p1": 1.0, "p2": 1.0, "p3": 0.5}
    assert evaluation.paired_stderr(a, b) == pytest.approx(1 / 6)
    assert evaluation.paired_stderr({"p1": 1.0}, {"p1": 0.0}) is None
    with pytest.raises(ValueError, match="not of the same problems"):
        evaluation.paired_stderr(a, {"p1": 1.0, "p2": 1.0, "p4": 0.5})
    records = [{"problem_id": pid, "correct": c, "level": 1, "length": 5, "finish_reason": "eos"}
               for pid, c in [("p1", True), ("p1", True), ("p2", True), ("p2", False), ("p3", False), ("p3", False)]]
    assert evaluation.summarize_by_level(records)["pass_rates"] == a


def test_selection_keeps_rates_strictly_inside_the_range_lowest_first_and_breaks_ties_by_its_seed():
    problems = [{"id": i} for i in "abcdef"]
    rates = {"a": 0.0, "b": 0.5, "c": 0.25, "d": 1.0, "e": 0.25, "f": 0.75}
    pick = lambda seed, low=0.0, high=1.0: [p["id"] for p in select_problems.choose(problems, rates, 3, low, high, seed)]
    assert pick(0) == ["e", "c", "b"] and pick(2) == ["c", "e", "b"]  # c and e tie at 0.25: seeded, not file order
    assert pick(0, low=-0.1) == ["a", "c", "e"] and pick(0, high=0.5) == ["c", "e"]  # a 0 counts only below the range


def test_selection_samples_as_training_does(half_right, tmp_path, monkeypatch):
    # The pass rates that choose the set are those of phase 2's own sampling: temperature 0.6 and no top-p
    # (evaluation's 0.95 would make the rates another policy's), with --samples responses per candidate.
    seen, real = [], select_problems.rollout
    monkeypatch.setattr(select_problems, "rollout", lambda *args, **kw: seen.append(args[3:8]) or real(*args, **kw))
    select_problems.main(["--ckpt", str(half_right), "--data", str(half_right / "problems.jsonl"), "--samples", "4",
                          "--num-problems", "1", "--max-new-tokens", "12", "--seed", "5", "--out", str(tmp_path / "s")])
    assert seen == [(4, 0.6, 1.0, 12, 5)]  # samples, temperature, top_p, max_new_tokens, seed
