import json
import random
import re

import pytest

import tasks
from common import InputError
from eval import pass_rates
from select_problems import choose
from tasks import (LEVELS, DataError, make_problem, make_split, make_trace, parse_problem, pick_problems,
                   prompt_text, read_problems, split_of)
from tokenizer import Tokenizer


def test_problems_are_deterministic_and_splits_disjoint():
    train, test = make_split("train", 50, seed=0), make_split("test", 50, seed=0)
    assert train == make_split("train", 50, seed=0)
    assert not {r["problem"] for r in train} & {r["problem"] for r in test}
    assert all(split_of(r["problem"]) == "test" for r in test)
    assert [sum(r["level"] == lv for r in test) for lv in LEVELS] == [50] * 5


def test_expression_text_and_answer_agree():
    rng = random.Random(1)
    for level in LEVELS:
        for _ in range(200):
            start, steps, text = make_problem(rng, level)
            assert len(steps) == level == text.count("+") + text.count("-") + text.count("*")
            assert eval(text) == steps[-1][2]  # the expression evaluates to the gold answer
            assert all(1 <= v <= 99 for _, _, v in steps)
            assert parse_problem(text) == (start, steps)


def test_traces_without_slips_are_correct_and_vary_in_length():
    rng = random.Random(0)
    problem = "((10-6)*5)-3"
    terse, _ = make_trace(rng, problem, verbosity=0.0, slip_rate=0.0)
    verbose, _ = make_trace(rng, problem, verbosity=1.0, slip_rate=0.0)
    assert terse == "10-6=4. 4*5=20. 20-3=17. \\boxed{17}"
    assert verbose.startswith("We need ((10-6)*5)-3. Step by step. 10-6=4. check 10-6=4 ok.")
    assert verbose.endswith("So the answer is 17. \\boxed{17}")
    assert len(verbose) >= 3 * len(terse)


def test_a_checked_slip_is_repaired_and_an_unchecked_one_is_not():
    rng = random.Random(3)
    checked = [make_trace(rng, "(20+5)+9", verbosity=1.0, slip_rate=1.0) for _ in range(20)]
    assert all(value == 34 and " no. " in text for text, value in checked)
    unchecked = [make_trace(rng, "20+5", verbosity=0.0, slip_rate=1.0) for _ in range(20)]
    assert all(value != 25 and f"={value}. " in text for text, value in unchecked)


def test_a_recheck_writes_the_right_result_and_the_closing_sentence_the_boxed_one():
    """The re-check of a slipped step shows the step's right result (10-6 is 4), not the slip again; the closing
    sentence names the value the box holds, also when an unchecked slip carried through to a wrong answer."""
    rng = random.Random(0)
    for _ in range(20):
        text, value = make_trace(rng, "10-6", verbosity=1.0, slip_rate=1.0)
        m = re.fullmatch(r"We need 10-6\. Step by step\. 10-6=(\d+)\. check 10-6=4 no\. 10-6=4\. "
                         r"So the answer is 4\. \\boxed\{4\}", text)
        assert m and m[1] != "4" and value == 4, text
    wrong_and_closed = 0
    for _ in range(200):  # each step slips; its re-check and the closing sentence each come half the time
        text, value = make_trace(rng, "(20+5)+9", verbosity=0.5, slip_rate=1.0)
        assert text.endswith(f"\\boxed{{{value}}}")
        said = re.search(r"So the answer is (\d+)\.", text)
        if said:
            assert int(said[1]) == value, text
            wrong_and_closed += value != 34
    assert wrong_and_closed >= 10


def test_padding_counts_find_each_kind_a_trace_writes():
    """Full verbosity writes a restatement, a re-check after each of the 3 steps and a closing; none writes none.
    A caught slip's re-check ("check ... no.") is one re-check."""
    problem = "((10-6)*5)-3"
    full, _ = make_trace(random.Random(0), problem, verbosity=1.0, slip_rate=0.0)
    bare, _ = make_trace(random.Random(0), problem, verbosity=0.0, slip_rate=0.0)
    assert bare == "10-6=4. 4*5=20. 20-3=17. \\boxed{17}"
    assert tasks.padding_counts([full]) == {"re-checks": 3, "restatements": 1, "closings": 1}
    assert tasks.padding_counts([full, bare]) == {"re-checks": 1.5, "restatements": 0.5, "closings": 0.5}
    slipped, _ = make_trace(random.Random(0), problem, verbosity=1.0, slip_rate=1.0)
    assert slipped.count(" no. ") == 3 and tasks.padding_counts([slipped])["re-checks"] == 3
    assert tasks.padding_counts([]) == {"re-checks": 0, "restatements": 0, "closings": 0}


def test_read_problems_accepts_toy_and_math_style(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [
        {"id": "t1", "problem": "2+3", "answer": "5", "level": 1},
        {"problem": "Compute x.", "solution": "So $x = \\boxed{\\frac{255}{4}}$.", "level": "Level 5",
         "type": "Algebra", "unique_id": "test/algebra/1.json"},
        {"question": "AIME?", "answer": 33},
        {"question": "GSM?", "answer": "#### 4", "level": 5.0},  # a level column with a gap, from pandas
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n\n" + json.dumps(rows[3]) + "\n")
    got = read_problems(str(path))
    assert got[0] == {"id": "t1", "problem": "2+3", "answer": "5", "level": 1}
    assert got[1] == {"id": "test/algebra/1.json", "problem": "Compute x.", "answer": "\\frac{255}{4}", "level": 5,
                      "subject": "Algebra"}
    assert got[2]["answer"] == "33" and got[2]["level"] is None and got[2]["id"] == "line 3"  # not the file's path
    assert got[3]["id"] == "line 5" and got[3]["level"] == 5  # line 4 is blank
    path.write_text(json.dumps({"id": "line 2", "problem": "1+1", "answer": "2"}) + "\n" + json.dumps(rows[2]) + "\n")
    with pytest.raises(DataError, match="p.jsonl:2: no id, and its name 'line 2' already used at .*p.jsonl:1; ids must "
                                        "be unique: give this one an id"):
        read_problems(str(path))


@pytest.mark.parametrize("line, message", [
    ("{oops", r"p.jsonl:2: not valid JSON"),
    ('{"answer": "1"}', r"p.jsonl:2: no 'problem'"),
    ('{"problem": "x", "solution": "no box"}', r"p.jsonl:2: no 'answer'"),
    ("[1, 2]", r"p.jsonl:2: expected a JSON object"),
    pytest.param("[" * 100_000 + "]" * 100_000, r"p.jsonl:2: JSON nested too deeply", id="deep"),  # RecursionError
    ('{"problem": "x", "answer": "1", "level": "Level \\u00b2"}', r"p.jsonl:2: 'level' must be an integer"),
    ('{"problem": "x", "answer": "1", "level": 1e5000}', r"p.jsonl:2: 'level' must be an integer"),  # not 5001 digits
    ('{"problem": "x", "answer": "1", "level": 5.5}', r"p.jsonl:2: 'level' must be an integer"),
    ('{"problem": "1+2\\ud800", "answer": "3"}', r"p.jsonl:2: its problem holds a lone surrogate escape"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"problem": "1+1", "answer": "2"}\n' + line + "\n")
    with pytest.raises(InputError, match=message):
        read_problems(str(path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="no such problems file"):
        read_problems(str(tmp_path / "nope.jsonl"))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no problems"):
        read_problems(str(tmp_path / "empty.jsonl"))


def test_toy_prompt_format():
    assert prompt_text("(1+2)*3", Tokenizer.byte_level()) == "Q: (1+2)*3\nA: "


def test_selection_keeps_sometimes_solved_lowest_first():
    problems = [{"id": str(i)} for i in range(6)]
    records = [{"problem_id": str(i), "correct": c} for i, cs in
               enumerate([[1, 1], [0, 0], [1, 0], [0, 1], [1, 1], [0, 0]]) for c in cs]
    records += [{"problem_id": "2", "correct": 0}, {"problem_id": "2", "correct": 0}]  # "2": 1 of 4
    rates = pass_rates(records)
    assert rates == {"0": 1.0, "1": 0.0, "2": 0.25, "3": 0.5, "4": 1.0, "5": 0.0}
    assert [p["id"] for p in choose(problems, rates, 2, 0.0, 1.0, seed=0)] == ["2", "3"]
    assert [p["id"] for p in choose(problems, rates, 5, 0.3, 1.0, seed=0)] == ["3"]


@pytest.mark.parametrize("size, n", [(8, 8), (6, 4), (7, 3), (5, 5), (10, 1)])
def test_steps_walk_through_epochs_without_repeating_a_problem(size, n):
    problems = [f"p{i}" for i in range(size)]
    steps = [pick_problems(problems, n, seed=3, step=s) for s in range(4 * size)]
    assert all(len(set(picks)) == n for picks in steps)  # 6 problems at 4 a step: 4 steps in 24 repeated one
    flat = [p for picks in steps for p in picks]
    for e in range(len(flat) // size):  # every epoch is each problem once
        assert sorted(flat[e * size : (e + 1) * size]) == sorted(problems)
    assert steps[5] == pick_problems(problems, n, seed=3, step=5)  # a function of (seed, step): resume picks the same
    assert steps[: size // n] != [pick_problems(problems, n, 4, s) for s in range(size // n)]  # another seed, another order


def replayed_picks(problems, n, seed, step):
    """pick_problems as it was before its epoch orders were kept: every epoch replayed from the first."""
    size, first, end = len(problems), step * n, (step + 1) * n
    picked, order = [], []
    for epoch in range((end - 1) // size + 1):
        start = epoch * size
        taken = set(order[max(0, start // n * n - (start - size)) :])
        order = list(range(size))
        random.Random(f"{seed}-{epoch}").shuffle(order)
        order = [i for i in order if i not in taken] + [i for i in order if i in taken]
        picked += [problems[order[j - start]] for j in range(max(first, start), min(end, start + size))]
    return picked


@pytest.mark.parametrize("size, n", [(8, 8), (6, 4), (7, 3), (5, 5), (10, 1), (3, 8)])
def test_kept_epoch_orders_pick_what_replaying_every_epoch_picked(size, n, monkeypatch):
    """The same picks in any order of calls: a resumed run's first call works out the epochs before it."""
    problems = [f"p{i}" for i in range(size)]
    for steps in (range(60), [57, 3, 40, 0, 59]):
        monkeypatch.setattr(tasks, "_ORDERS", {})
        assert [pick_problems(problems, n, 11, s) for s in steps] == [replayed_picks(problems, n, 11, s) for s in steps]
    other = [f"q{i}" for i in range(size)]  # the kept orders hold indices: another list of that size uses them too
    assert pick_problems(other, n, 11, 30) == replayed_picks(other, n, 11, 30)


def test_selection_refuses_settings_it_cannot_meet_before_it_samples(half_right, tmp_path, capsys, monkeypatch):
    """Both were refused only after every candidate was sampled (hours at the paper's scale)."""
    import select_problems
    monkeypatch.setattr(select_problems, "load_for_inference", lambda *a, **k: pytest.fail("the model was loaded"))
    flags = ["--ckpt", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(tmp_path / "s.jsonl")]
    for extra, message in [
        (["--samples", "8", "--min-pass-rate", "0.4", "--max-pass-rate", "0.5"],
         "no pass rate of 8 samples (0/8, 1/8, ...) is strictly between --min-pass-rate 0.4 and --max-pass-rate 0.5"),
        (["--num-problems", "999"], "--num-problems 999, but there are only"),
    ]:
        with pytest.raises(SystemExit) as e:
            select_problems.main(flags + extra)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_plot_legends_tell_runs_of_the_same_folder_name_apart(tmp_path, capsys):
    import plots
    assert plots.log_names(["runs/seed0/phase2/log.jsonl", "runs/seed1/phase2/log.jsonl"]) == ["seed0/phase2",
                                                                                             "seed1/phase2"]
    assert plots.log_names(["a/phase1/log.jsonl", "a/phase2/log.jsonl"]) == ["phase1", "phase2"]
    with pytest.raises(SystemExit) as e:  # one run hid the other in the legend
        plots.main(["--logs", "x/log.jsonl", "y/log.jsonl", "--names", "run", "run", "--out-dir", str(tmp_path)])
    assert e.value.code == 2 and "--names run is given twice: each log needs its own name" in capsys.readouterr().err


def test_every_gold_answer_is_the_value_of_its_expression():
    """The answer is the last step's result: Python's own arithmetic on the expression text is the oracle."""
    for split in ("test", "train"):
        records = make_split(split, 20, seed=0)
        assert len(records) == 100 and all(r["answer"] == str(eval(r["problem"])) for r in records)
    assert make_split("test", 1, seed=0)[0] == {"id": "test-L1-0", "problem": "19+10", "answer": "29", "level": 1}


def test_the_split_of_known_expressions():
    """Pinned: a change to the hash rule would silently move problems between train and test across versions.
    md5 of "19+10" and "10-6" is 0 mod 5 (test); of "1+1" 1, of "((10-6)*5)-3" 2 (train)."""
    assert [split_of(p) for p in ("19+10", "10-6", "1+1", "((10-6)*5)-3")] == ["test", "test", "train", "train"]
    assert [r["problem"] for r in make_split("test", 1, seed=0)] == [
        "19+10", "(5+3)+11", "((19+11)*3)-7", "(((19*5)+3)-9)+4", "((((17-6)*9)-15)-10)-7"]
    assert [r["problem"] for r in make_split("train", 1, seed=0)] == [
        "30-9", "(21*3)-15", "((21*2)+7)-5", "(((3+3)-3)*7)*3", "((((19*4)+19)-9)+5)+7"]


def test_no_problem_is_drawn_twice_within_a_split():
    records = make_split("train", 200, seed=0)  # 200 of level 1's ~1000 distinct problems: repeats would come up
    assert len(records) == 1000 and len({r["problem"] for r in records}) == 1000


def test_the_verbosity_knob_leans_verbose():
    """v is the larger of two uniform draws, so E[v] = 2/3; the opening restatement appears with probability v,
    so about 2/3 of traces open with it (the smaller of the two draws would give 1/3)."""
    rng = random.Random(0)
    share = sum(make_trace(rng, "((10-6)*5)-3")[0].startswith("We need") for _ in range(3000)) / 3000
    assert abs(share - 2 / 3) < 0.04  # 3000 draws: a standard error of about 0.009


def test_every_epoch_is_shuffled_anew():
    """Each epoch draws its own order from (seed, epoch): one order repeated every epoch would feed the same
    neighbours into the same steps for the whole run."""
    problems = [f"p{i}" for i in range(10)]
    first, second = pick_problems(problems, 10, seed=0, step=0), pick_problems(problems, 10, seed=0, step=1)
    assert sorted(first) == sorted(second) == problems and first != second


def test_selected_problems_carry_their_pass_rate(half_right, tmp_path, capsys):
    """The output records gain "pass_rate", one of the k/8 a problem can have, inside (0, 1): "3" is never
    solved by the tiny policy, so "1" and "2" are the two chosen."""
    import select_problems
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": a, "problem": "1", "answer": a, "level": 1}) + "\n" for a in "123"))
    out = tmp_path / "set.jsonl"
    select_problems.main(["--ckpt", str(half_right), "--data", str(data), "--samples", "8", "--num-problems", "2",
                          "--max-new-tokens", "12", "--out", str(out)])
    chosen = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in chosen) == ["1", "2"]
    assert all(r["pass_rate"] in [k / 8 for k in range(1, 8)] for r in chosen), chosen
    assert chosen[0]["pass_rate"] <= chosen[1]["pass_rate"]  # lowest first


def test_a_range_only_always_solved_problems_meet_is_accepted(half_right, tmp_path, capsys, monkeypatch):
    """(0.9, 1.5) with 8 samples: only 8/8 = 1.0 lies inside (7/8 = 0.875 does not), and it is a rate a
    problem can have. The sampling is replaced by eight correct responses per problem."""
    import select_problems
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"id": "q", "problem": "1", "answer": "1", "level": 1}) + "\n")
    monkeypatch.setattr(select_problems, "rollout", lambda model, tok, problems, samples, *a, **k: [
        {"problem_id": p["id"], "correct": True} for p in problems for _ in range(samples)])
    out = tmp_path / "set.jsonl"
    select_problems.main(["--ckpt", str(half_right), "--data", str(data), "--samples", "8", "--num-problems", "1",
                          "--min-pass-rate", "0.9", "--max-pass-rate", "1.5", "--max-new-tokens", "12",
                          "--out", str(out)])
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"id": "q", "problem": "1", "answer": "1", "level": 1, "pass_rate": 1.0}]


def test_ties_between_pass_rates_are_broken_by_the_seed():
    problems = [{"id": str(i)} for i in range(10)]
    rates = {str(i): 0.5 for i in range(10)}
    picks = {seed: [p["id"] for p in choose(problems, rates, 10, 0.0, 1.0, seed)] for seed in (0, 1)}
    for seed, ids in picks.items():  # all tied: the seeded shuffle's order
        order = [str(i) for i in range(10)]
        random.Random(seed).shuffle(order)
        assert ids == order
    assert picks[0] != picks[1]


def test_selection_samples_every_candidate_of_a_seeded_subset_at_top_p_1(half_right, tmp_path, monkeypatch):
    """--candidates N problems of a seeded shuffle, each sampled from the model's own distribution (top-p 1:
    a pass rate measured at top-p 0.95 would not be phase 2's, which samples at 1)."""
    import select_problems
    data = tmp_path / "p.jsonl"
    records = [{"id": str(i), "problem": "1", "answer": "1", "level": 1} for i in range(10)]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    seen = {}

    def rollout(model, tok, problems, samples, temperature, top_p, *args, **kwargs):
        seen.update(ids=[p["id"] for p in problems], top_p=top_p, temperature=temperature)
        return [{"problem_id": p["id"], "correct": k < 4} for p in problems for k in range(samples)]

    monkeypatch.setattr(select_problems, "rollout", rollout)
    select_problems.main(["--ckpt", str(half_right), "--data", str(data), "--candidates", "6", "--num-problems", "2",
                          "--seed", "3", "--max-new-tokens", "12", "--out", str(tmp_path / "set.jsonl")])
    order = [str(i) for i in range(10)]
    random.Random(3).shuffle(order)
    assert seen == {"ids": order[:6], "top_p": 1.0, "temperature": 0.6}
