"""train_sft.py: a --max-seq-len too short for the traces or the probe is refused before any training, and
Ctrl-C stops a run with one line, leaving --out as it was and no temp folder beside it."""

import json
import os
import random
import signal

import pytest

import train_sft
from tokenizer import Tokenizer

TINY = ["--steps", "4", "--batch-size", "2", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--probe-every", "0"]
# The longest prompt + trace + EOS of each level, found by an exhaustive search over every problem and every
# trace tasks.make_trace can write for it (every verbosity and slip choice).
EXHAUSTIVE = {1: 112, 2: 161, 3: 210, 4: 260, 5: 309}


def one_line_error(argv, capsys):
    """Run train_sft on argv, which it must refuse: (its single stderr line, its stdout)."""
    with pytest.raises(SystemExit) as e:
        train_sft.main(argv)
    out, err = capsys.readouterr()
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip(), out


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("level", EXHAUSTIVE)
def test_the_bound_holds_the_longest_trace_of_each_level(level):
    only = {lv: float(lv == level) for lv in EXHAUSTIVE}
    assert EXHAUSTIVE[level] <= train_sft.longest_example(Tokenizer.byte_level(), only) <= EXHAUSTIVE[level] + 8


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_a_max_seq_len_too_short_for_the_traces_is_refused_before_training(tmp_path, capsys, arch):
    # gpt2 used to crash with a traceback at its first step; qwen2 (RoPE) trained past its context unnoticed
    err, out = one_line_error(["--arch", arch, "--max-seq-len", "16", "--steps", "5", "--out", str(tmp_path / "x")],
                              capsys)
    assert err == ("error: --max-seq-len 16 is too short: training sequences (prompt + trace + EOS) reach 316 tokens "
                   "at these --level-weights; pass --max-seq-len 316 or more")
    assert "step" not in out and os.listdir(tmp_path) == []


def test_the_probe_is_counted_only_when_it_runs(tmp_path, capsys):
    # 320 holds the traces (316) but not the probe's longest prompt (30 tokens) + 320 new tokens: it used to
    # crash at the first probe, after the training, with advice about a --max-new-tokens train_sft lacks.
    err, out = one_line_error(["--max-seq-len", "320", "--steps", "5", "--probe-every", "5",
                               "--out", str(tmp_path / "x")], capsys)
    assert "reach 316 tokens at these --level-weights, the probe's longest prompt + 320 new tokens 350 " \
           "(--probe-every 0: no probe); pass --max-seq-len 350 or more" in err
    assert "step" not in out and os.listdir(tmp_path) == []
    err, _ = one_line_error(["--max-seq-len", "315", "--out", str(tmp_path / "x"), *TINY], capsys)
    assert "pass --max-seq-len 316 or more" in err
    # 316 is enough when the probe never runs (--probe-every 500 > --steps 4)
    train_sft.main(["--max-seq-len", "316", "--out", str(tmp_path / "x"), *TINY, "--probe-every", "500"])
    assert json.loads((tmp_path / "x" / "train_sft.json").read_text())["log"][-1]["step"] == 3


def test_batches_refuses_a_sequence_longer_than_max_seq_len():
    tok, levels = Tokenizer.byte_level(), {1: 2, 2: 2, 3: 2, 4: 1, 5: 0.4}
    # seed 0 draws 16 examples for the first pool of 8 batches of 2; the longest is 213 tokens
    with pytest.raises(train_sft.InputError, match="^a training sequence of 213 tokens exceeds --max-seq-len 212; "
                                                   "pass --max-seq-len 213 or more$"):
        next(train_sft.batches(random.Random(0), tok, 2, levels, 212))
    x, _, _ = next(train_sft.batches(random.Random(0), tok, 2, levels, 213))
    assert x.shape[1] <= 212  # inputs drop the last token


def test_the_check_leaves_the_training_numbers_as_they_were(tmp_path):
    # losses of this run before --max-seq-len was checked: the check draws nothing from the run's random stream
    train_sft.main(["--out", str(tmp_path / "x"), *TINY, "--steps", "3", "--log-every", "1"])
    losses = [r["loss"] for r in json.loads((tmp_path / "x" / "train_sft.json").read_text())["log"]]
    assert losses == pytest.approx([5.549452781677246, 5.545056343078613, 5.550695896148682], rel=1e-5)


def ctrl_c_in(monkeypatch, name, at_step=None):
    """Press Ctrl-C (a real SIGINT) when train_sft calls `name`, or when it calls it for step `at_step`."""
    real = getattr(train_sft, name)

    def pressed(*args, **kwargs):
        if at_step is None or args[0] == at_step:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_sft, name, pressed)


def stopped(argv, capsys):
    """Run train_sft until Ctrl-C stops it: its stderr, stripped."""
    try:
        with pytest.raises(SystemExit) as e:
            train_sft.main(argv)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended train_sft with a KeyboardInterrupt traceback")
    err = capsys.readouterr().err.strip()
    assert e.value.code == 130 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def terminal_ctrl_c():
    """Ctrl-C raises KeyboardInterrupt, as in a terminal: a test run that a shell started in the background
    inherits SIGINT ignored, and Python then installs no handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("name, at_step", [("lr_at", 3), ("write_json", None)])  # while training, while saving
def test_ctrl_c_stops_with_one_line_and_leaves_out_as_it_was(tmp_path, monkeypatch, capsys, terminal_ctrl_c, name,
                                                            at_step):
    out = tmp_path / "base"
    train_sft.main(["--out", str(out), *TINY, "--steps", "1"])
    before = files_of(out)
    ctrl_c_in(monkeypatch, name, at_step)
    err = stopped(["--out", str(out), "--overwrite", *TINY], capsys)
    assert err == (f"stopped by Ctrl-C at step 3 of 4: nothing was saved (the checkpoint is written only at the end); "
                   f"--out {out} is unchanged")
    assert files_of(out) == before and os.listdir(tmp_path) == ["base"]  # no {out}.tmp{pid} left beside it


def test_a_full_disk_at_the_save_ends_in_one_line_and_leaves_out_as_it_was(tmp_path, monkeypatch, capsys):
    import common
    from safetensors import SafetensorError

    out = tmp_path / "base"
    train_sft.main(["--out", str(out), *TINY, "--steps", "1"])
    before = files_of(out)

    def full_disk(tensors, path):  # safetensors reports a failed write as SafetensorError, not OSError
        open(path, "wb").write(b"\0" * 10)
        raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")

    monkeypatch.setattr(common, "save_file", full_disk)
    err, _ = one_line_error(["--out", str(out), "--overwrite", *TINY], capsys)
    assert err.startswith(f"error: could not save the trained model in {out}.tmp") and "No space left on device" in err
    assert files_of(out) == before and os.listdir(tmp_path) == ["base"]  # nothing half-written left beside it


def test_each_probe_is_filed_under_the_step_it_measured(tmp_path):
    """It went to the last logged step: the shipped base's probes after 500, 1000, ... steps sit under 450, 950."""
    train_sft.main(["--out", str(tmp_path / "base"), *TINY, "--log-every", "3", "--probe-every", "2"])
    log = json.loads((tmp_path / "base" / "train_sft.json").read_text())["log"]
    assert [r["step"] for r in log if "probe" in r] == [1, 3]  # after 2 and 4 steps
    assert [r["step"] for r in log] == [0, 1, 3]  # steps 0 and 3 logged every 3; step 1 for its probe


@pytest.mark.parametrize("weights", ["0,0,0,0,0", "1e308,1e308,1e308,1e308,1e308", "5e-324,0,0,0,0"])
def test_level_weights_that_draw_nothing_or_overflow_are_refused_in_one_line(tmp_path, capsys, weights):
    """All 0 leaves nothing to draw; five weights of 1e308 sum to inf, which random.choices refused with a
    traceback at the first batch, after the run had started; a total of 5e-324 drew level 5, of weight 0,
    about half the time (random() x 5e-324 rounds to 0 or to 5e-324)."""
    err, out = one_line_error(["--level-weights", weights, "--out", str(tmp_path / "x"), *TINY], capsys)
    assert f"argument --level-weights: needs 5 non-negative numbers, with a sum from 1e-300 to a finite number, got " \
        f"'{weights}'" in err
    assert "step" not in out and os.listdir(tmp_path) == []
    assert train_sft.level_weights("1e307,1e307,1e307,1e307,0") == {1: 1e307, 2: 1e307, 3: 1e307, 4: 1e307, 5: 0.0}
    assert train_sft.level_weights("1e-300,0,0,0,0") == {1: 1e-300, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0}
    draws = random.Random(0).choices([1, 5], weights=[5e-324, 0], k=1000)  # why the floor: the total's rounding
    assert 400 < draws.count(5) < 600
    assert random.Random(0).choices([1, 5], weights=[1e-300, 0], k=1000).count(5) == 0


def test_the_probe_is_the_share_correct_of_each_levels_problems(monkeypatch):
    """Greedy, one response per problem, the first per_level test problems of each level; the accuracy of a
    level is its correct responses over its problems (2 here), not over all 10."""
    import eval as evaluation
    calls = []

    def rollout(model, tok, problems, samples, temperature, top_p, max_new_tokens, seed):
        calls.append(([p["id"] for p in problems], samples, temperature, max_new_tokens))
        right = {1: 2, 2: 1, 3: 1, 4: 0, 5: 0}  # the first `right` of each level's two problems are solved
        return [{"level": p["level"], "correct": int(p["id"].split("-")[-1]) < right[p["level"]]} for p in problems]

    monkeypatch.setattr(evaluation, "rollout", rollout)
    trained = []
    model = type("Model", (), {"train": lambda self: trained.append(True)})()
    assert train_sft.probe(model, Tokenizer.byte_level(), per_level=2) == {1: 1.0, 2: 0.5, 3: 0.5, 4: 0.0, 5: 0.0}
    ids = [f"test-L{lv}-{i}" for lv in range(1, 6) for i in range(2)]
    assert calls == [(ids, 1, 0.0, train_sft.PROBE_NEW_TOKENS)] and trained == [True]  # back in training mode


@pytest.mark.parametrize("arch, vectors", [
    ("qwen2", ["blocks.0.norm1.weight", "blocks.0.attn.q.bias", "blocks.0.attn.k.bias", "blocks.0.attn.v.bias",
               "blocks.0.norm2.weight", "norm_f.weight"]),
    ("gpt2", ["blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.attn.q.bias", "blocks.0.attn.k.bias",
              "blocks.0.attn.v.bias", "blocks.0.attn.o.bias", "blocks.0.norm2.weight", "blocks.0.norm2.bias",
              "blocks.0.mlp.up.bias", "blocks.0.mlp.down.bias", "norm_f.weight", "norm_f.bias"]),
])
def test_weight_decay_falls_on_matrices_not_on_norms_and_biases(arch, vectors):
    """Decaying a norm's gain towards 0 shrinks its whole layer's output; the usual AdamW recipe decays only the
    embeddings and linear weights."""
    from model import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=258, n_layer=1, n_head=2, n_embd=16, max_seq_len=64,
                          **train_sft.ARCHS[arch](16)))
    matrices = ["tok_emb.weight", *(["pos_emb.weight"] if arch == "gpt2" else []), "blocks.0.attn.q.weight",
                "blocks.0.attn.k.weight", "blocks.0.attn.v.weight", "blocks.0.attn.o.weight",
                *(["blocks.0.mlp.gate.weight"] if arch == "qwen2" else []), "blocks.0.mlp.up.weight",
                "blocks.0.mlp.down.weight"]
    name = {id(p): n for n, p in model.named_parameters()}
    decay, plain = train_sft.param_groups(model, 0.1)
    assert (decay["weight_decay"], plain["weight_decay"]) == (0.1, 0.0)
    assert sorted(name[id(p)] for p in decay["params"]) == sorted(matrices)
    assert sorted(name[id(p)] for p in plain["params"]) == sorted(vectors)
