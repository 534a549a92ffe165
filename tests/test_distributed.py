"""train_rl.py, eval.py and select_problems.py on two processes (torch.distributed with gloo on the CPU,
FSDP2-sharded models), against one process: the same responses, the same figures, weights within 1e-4."""

import json
import os
import signal
import socket

import pytest
import torch
import torch.multiprocessing as mp

import distributed
import eval as evaluation
import select_problems
import model
import train_rl
from model import GPT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recording(out, real):
    """train_rl.collect that also writes each step's sampled token ids to out/batch-<step>.json."""

    def collect(*args):
        batch, times = real(*args)
        if train_rl.is_main():
            with open(os.path.join(out, f"batch-{args[-1]}.json"), "w") as f:
                json.dump(batch.input_ids.tolist(), f)
        return batch, times

    return collect


def optimizer_step_where_one_process_saw_a_nan(argv):
    """train_rl.optimizer_step on a model whose gradient is finite, but process 1's loss was not (ok=False):
    writes {"applied": ...} to argv[0]/<rank>.json."""
    distributed.setup()
    layer = torch.nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    applied, _ = train_rl.optimizer_step(layer, torch.optim.AdamW(layer.parameters()), 1.0, ok=distributed.rank() == 0)
    with open(os.path.join(argv[0], f"{distributed.rank()}.json"), "w") as f:
        json.dump({"applied": applied}, f)
    distributed.leave()


def main_after_leave(argv):
    """Writes {"main": is_main()} to argv[0]/<rank>.json after leaving the group, as eval.py's main() asks
    before it writes its figures."""
    distributed.setup()
    distributed.leave()
    with open(os.path.join(argv[0], f"{distributed.rank()}.json"), "w") as f:
        json.dump({"main": distributed.is_main()}, f)


def host_copies_in_a_save(argv):
    """Shards a tiny model and its AdamW state, then counts the bytes each process copies to the CPU for a
    checkpoint (full_state, optimizer_state): writes {"bytes": n} to argv[0]/<rank>.json."""
    distributed.setup()
    torch.manual_seed(0)
    runner = distributed.shard(model.GPT(model.GPTConfig(vocab_size=16, n_layer=2, n_head=2, n_embd=8, n_inner=16)))
    opt = torch.optim.AdamW(runner.parameters())
    runner(lambda m, x: m(x).sum(), torch.ones(1, 3, dtype=torch.long)).backward()
    opt.step()
    copied, real_cpu = [], torch.Tensor.cpu
    torch.Tensor.cpu = lambda t, *a, **k: copied.append(t.numel() * t.element_size()) or real_cpu(t, *a, **k)
    distributed.full_state(runner.model), distributed.optimizer_state(opt, "actor")
    torch.Tensor.cpu = real_cpu
    with open(os.path.join(argv[0], f"{distributed.rank()}.json"), "w") as f:
        json.dump({"bytes": sum(copied)}, f)
    distributed.leave()


def worker(rank, world, port, main, argv, record, interrupt_at, head_chunk):
    """One process of a torchrun-like group (what torchrun's environment variables say)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    model.HEAD_CHUNK_ELEMENTS = head_chunk
    if record:
        train_rl.collect = recording(record, train_rl.collect)
    if interrupt_at is not None:  # Ctrl-C reaches every process of a torchrun group
        real = train_rl.collect

        def collect(*args):
            if args[-1] == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
            return real(*args)

        train_rl.collect = collect
    mains = {"train_rl": train_rl.main, "eval": evaluation.main, "select": select_problems.main,
             "nan_step": optimizer_step_where_one_process_saw_a_nan, "after_leave": main_after_leave,
             "host_copies": host_copies_in_a_save}
    distributed.exit_after(lambda: mains[main](argv))  # as the scripts end under torchrun


def spawn(main, argv, record=None, interrupt_at=None, world=2, head_chunk=model.HEAD_CHUNK_ELEMENTS):
    mp.spawn(worker, args=(world, free_port(), main, argv, record, interrupt_at, head_chunk), nprocs=world)


def rl_flags(half_right, out, *extra):
    return ["--init", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(out),
            "--steps", "2", "--prompts-per-step", "2", "--samples-per-prompt", "5", "--max-new-tokens", "12",
            "--critic-warmup-steps", "0", "--eval-every", "0", "--device", "cpu", "--actor-lr", "1e-3",
            "--critic-lr", "1e-3", "--minibatches", "2", "--ppo-epochs", "2", "--micro-batch", "2", *extra]


def assert_close_weights(a, b, tol=1e-4):
    """Every tensor within `tol` relative. Except the key projection's bias: its gradient is exactly 0 (a
    shift added to every key score of a query leaves the softmax unchanged), so it moves only by AdamW
    normalising rounding noise, which the order of float sums changes. It must stay within 1e-4 absolute: the
    8 AdamW steps of these runs (lr 1e-3) could move a parameter by up to 8e-3; rounding noise moved it 4e-5."""
    for name in [n for n in ("actor", "critic") if (a / "checkpoint" / n).exists()]:
        wa = GPT.from_pretrained(str(a / "checkpoint" / name), value_head=name == "critic").state_dict()
        wb = GPT.from_pretrained(str(b / "checkpoint" / name), value_head=name == "critic").state_dict()
        for k in wa:
            if k.endswith("attn.k.bias"):
                assert (wa[k] - wb[k]).abs().max().item() <= 1e-4, (name, k)
            else:
                assert ((wa[k] - wb[k]).norm() / wa[k].norm().clamp(min=1e-12)).item() <= tol, (name, k)


def log_without_times(folder):
    drop = lambda rec: {k: v for k, v in rec.items() if not k.startswith("time") and k != "tokens_per_s"}
    return [drop(json.loads(line)) for line in open(folder / "log.jsonl")]


@pytest.mark.slow
@pytest.mark.parametrize("extra,head_chunk", [([], model.HEAD_CHUNK_ELEMENTS),
                                              ([], 600),  # log-probs a position or two at a time, checkpointed
                                              (["--micro-batch-tokens", "40", "--algo", "grpo"], model.HEAD_CHUNK_ELEMENTS),
                                              # one micro-batch per minibatch: process 1 runs only dummy ones
                                              (["--micro-batch", "16", "--minibatches", "5"], model.HEAD_CHUNK_ELEMENTS),
                                              # bf16 autocast over the gathered fp32 weights, as in one process
                                              (["--dtype", "bf16"], model.HEAD_CHUNK_ELEMENTS)],
                         ids=["ppo", "ppo-chunked-head", "grpo-packed", "ppo-one-micro-batch", "ppo-bf16"])
def test_two_processes_sample_and_train_what_one_does(half_right, tmp_path, monkeypatch, extra, head_chunk):
    torch.set_num_threads(1)
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
    with monkeypatch.context() as m:
        m.setattr(train_rl, "collect", recording(str(one), train_rl.collect))
        m.setattr(model, "HEAD_CHUNK_ELEMENTS", head_chunk)
        train_rl.main(rl_flags(half_right, one, *extra, "--overwrite"))
    spawn("train_rl", rl_flags(half_right, two, *extra, "--overwrite"), record=str(two), head_chunk=head_chunk)
    for step in (0, 1):  # the same responses, token for token
        assert json.loads((one / f"batch-{step}.json").read_text()) == json.loads((two / f"batch-{step}.json").read_text())
    assert_close_weights(one, two)
    a, b = log_without_times(one), log_without_times(two)
    assert [r["reward_mean"] for r in a] == [r["reward_mean"] for r in b]
    assert [r["length_mean"] for r in a] == [r["length_mean"] for r in b]
    assert json.loads((two / "config.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_a_non_finite_loss_on_one_process_skips_the_step_on_every_process(tmp_path):
    spawn("nan_step", [str(tmp_path)])  # if process 0 stepped alone, the shards would drift apart
    assert [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)] == [{"applied": False}] * 2


@pytest.mark.slow
def test_only_process_0_copies_a_checkpoint_to_host_memory(tmp_path):
    """Every process gathers each whole tensor, but only process 0 writes: the others kept a whole copy of
    the weights and optimizer state in host memory for nothing (for 7B on 8 GPUs, 8 x 16 bytes a parameter)."""
    spawn("host_copies", [str(tmp_path)])
    copied = {f.name: json.loads(f.read_text())["bytes"] for f in tmp_path.iterdir()}
    n = model.GPT(model.GPTConfig(vocab_size=16, n_layer=2, n_head=2, n_embd=8, n_inner=16)).num_params()
    assert copied["1.json"] == 0 and copied["0.json"] >= 3 * 4 * n  # weights and two AdamW moments, fp32


@pytest.mark.slow
def test_only_process_0_is_main_after_the_group_is_left(tmp_path):
    spawn("after_leave", [str(tmp_path)])  # before the fix, both were rank 0 then: both wrote eval.py's --out
    assert {f.name: json.loads(f.read_text()) for f in tmp_path.iterdir()} == {"0.json": {"main": True},
                                                                                 "1.json": {"main": False}}


@pytest.mark.parametrize("backend, name, message", [
    ("nccl", "cpu", "--device cpu under torchrun on a GPU machine: the processes talk over NCCL"),
    ("nccl", "cuda:1", "--device cuda:1 under torchrun: each process takes its own GPU"),
    ("nccl", "cuda:0", "--device cuda:0 under torchrun"),  # process 0's own GPU, but process 1 would refuse it
    ("nccl", "cuda", None),
    ("gloo", "cpu", None),
])
def test_check_device_under_torchrun(monkeypatch, backend, name, message):
    """What a process of a two-process group on GPUs accepts (no GPU here: the group is faked)."""
    monkeypatch.setattr(distributed, "world", lambda: 2)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: backend)
    if message is None:
        distributed.check_device(name)
    else:
        with pytest.raises(train_rl.InputError, match=message):
            distributed.check_device(name)


@pytest.mark.slow
def test_a_resume_after_an_interrupt_under_two_processes_ends_where_one_process_ends(half_right, tmp_path):
    torch.set_num_threads(1)
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_rl.main(rl_flags(half_right, full, "--steps", "3"))
    with pytest.raises(mp.ProcessExitedException) as stopped:  # Ctrl-C in step 1: both processes save and stop
        spawn("train_rl", rl_flags(half_right, cut, "--steps", "3"), interrupt_at=1)
    # with status 130: exit_after turns a traceback into status 1, which is a ProcessExitedException too
    assert stopped.value.exit_code == 130
    assert json.loads((cut / "checkpoint" / "state.json").read_text())["step"] == 2
    spawn("train_rl", ["--resume", "--out", str(cut)])  # resumed by two processes (one would do too)
    assert [r["step"] for r in log_without_times(cut)] == [0, 1, 2]
    assert_close_weights(full, cut)


@pytest.mark.slow
def test_eval_and_selection_split_their_sampling_and_agree_with_one_process(half_right, tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": "1", "answer": str(1 + i % 3), "level": 1 + i % 2})
                            + "\n" for i in range(6)))
    flags = lambda out: ["--ckpt", str(half_right), "--data", str(data), "--samples", "3", "--max-new-tokens", "12",
                         "--device", "cpu", "--out", str(out)]
    evaluation.main(flags(tmp_path / "one.json"))
    spawn("eval", flags(tmp_path / "two.json"))
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert one["results"] == two["results"]
    pick = lambda out: ["--ckpt", str(half_right), "--data", str(data), "--candidates", "6", "--num-problems", "2",
                        "--max-new-tokens", "12", "--device", "cpu", "--out", str(out)]
    select_problems.main(pick(tmp_path / "one.jsonl"))
    spawn("select", pick(tmp_path / "two.jsonl"))
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "two.jsonl").read_text()


@pytest.mark.parametrize("main", [train_rl.main, evaluation.main, select_problems.main])
def test_torchruns_own_parser_passes_every_flag_to_the_script(main, monkeypatch):
    """torchrun reads the whole command line for its own options, abbreviations included, before the script
    sees it: a script flag that is the start of one of torchrun's (select_problems.py's old --n: --nnodes,
    --nproc-per-node, ...) stops torchrun itself with "ambiguous option"; the tests' workers start with
    mp.spawn, which never meets that parser."""
    import argparse
    from torch.distributed.run import get_args_parser

    flags = []

    def record(parser, argv=None, namespace=None):
        flags.extend(s for action in parser._actions for s in action.option_strings if s.startswith("--"))
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", record)
    with pytest.raises(SystemExit):
        main([])
    monkeypatch.undo()
    assert len(flags) > 10
    for flag in flags:
        parsed = get_args_parser().parse_args(["--nproc_per_node", "2", "script.py", flag, "1"])
        assert parsed.training_script_args == [flag, "1"], flag


EXIT_SCRIPT = """
import atexit, sys
import distributed
atexit.register(lambda: print("python's shutdown ran"))
def main():
    print("done", end="")  # stdout is a pipe, so this waits in Python's buffer
    {ending}
distributed.exit_after(main)
"""


def python(*args, torchrun=True):
    """`python ARGS` with the project importable, in a torchrun process's environment (WORLD_SIZE set) or not."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, *args], env={**env, "WORLD_SIZE": "2"} if torchrun else env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ending, code, err", [
    ("", 0, ""),
    pytest.param("sys.exit(2)", 2, "", marks=pytest.mark.slow),  # an InputError's exit, from cli
    pytest.param("raise SystemExit('stopped')", 1, "stopped\n", marks=pytest.mark.slow),
    pytest.param("raise ValueError('bad')", 1, "ValueError: bad\n", marks=pytest.mark.slow),
])
def test_a_torchrun_process_ends_with_mains_status_without_pythons_shutdown(ending, code, err):
    """Under torchrun (WORLD_SIZE set) exit_after ends the process at once: the atexit handler never runs, which is
    the shutdown in which gloo's threads crashed finished runs; what main printed still comes out."""
    got = python("-c", EXIT_SCRIPT.format(ending=ending))
    assert (got.returncode, got.stdout) == (code, "done")
    assert got.stderr.endswith(err) and ("Traceback" in got.stderr) == ("ValueError" in ending), got.stderr
    got = python("-c", EXIT_SCRIPT.format(ending=ending), torchrun=False)  # Python's own shutdown, as before
    assert (got.returncode, got.stdout) == (code, "done" + "python's shutdown ran\n")


def test_a_profiled_torchrun_process_keeps_pythons_shutdown(tmp_path):
    """`torchrun -m cProfile -o F script.py`: cProfile writes F after the script returns, and a tracer such as
    coverage saves at exit; os._exit would drop both (exit status 0, no file)."""
    script, prof = tmp_path / "script.py", tmp_path / "prof.out"
    script.write_text(EXIT_SCRIPT.format(ending=""))
    got = python("-m", "cProfile", "-o", str(prof), str(script))
    assert got.returncode == 0 and prof.exists(), got.stderr


def test_my_share_takes_every_nth_item_and_pads_to_the_same_count(monkeypatch):
    """5 items over 2 processes: rank 0 takes 0, 2, 4 and rank 1 takes 1, 3 and a None, so both make 3 calls
    (FSDP's collectives hang when one process makes fewer)."""
    monkeypatch.setattr(distributed, "world", lambda: 2)
    shares = []
    for r in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        shares.append(distributed.my_share(iter(range(5))))
    assert shares == [[0, 2, 4], [1, 3, None]]
    monkeypatch.setattr(distributed, "world", lambda: 4)
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    assert distributed.my_share(range(2)) == [None]  # 2 items over 4 processes: rank 2 has none, still one call
