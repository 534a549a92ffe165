"""What a torchrun run says and does when one process fails or the run is stopped: a process that loses its peer
says so in one line (the peer's own error says why), a stop delivered twice (a scheduler signals every process,
torchrun passes its own signal on) is one stop, and a step longer than torchrun's grace period is said."""

import datetime
import io
import json
import os
import signal
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

import common
import distributed
import train_rl
from common import InputError, StopRequest, cli
from test_distributed import free_port


def test_a_sigterm_delivered_twice_is_one_stop_and_ctrl_c_still_quits(monkeypatch):
    """Under torchrun with a scheduler that signals every process (SLURM at a time limit), each process got the
    scheduler's SIGTERM and torchrun's: the second one quit without saving, losing every step since the last save."""
    monkeypatch.delenv("RANK", raising=False)
    with StopRequest() as stop:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # the same stop, from torchrun
            time.sleep(0.01)
        except KeyboardInterrupt:  # (not raised on: pytest would stop the whole session)
            pytest.fail("a SIGTERM delivered twice quit without saving")
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C quits, as before
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)


def test_a_second_sigterm_later_still_quits(monkeypatch):
    """torchrun's agent answers a second Ctrl-C with SIGTERM to its processes, seconds after the first stop."""
    clock = iter([100.0, 100.0 + getattr(common, "REPEAT_WINDOW", 2.0) + 1])
    monkeypatch.setattr(common.time, "monotonic", lambda: next(clock))
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
    assert stop.requested


def test_ctrl_c_twice_under_torchrun_still_quits(monkeypatch):
    """torchrun passes a Ctrl-C on as SIGINT and answers a second one with SIGTERM, at once: that SIGTERM is the
    user's second Ctrl-C, not the first stop delivered twice (measured: the worker finished its step and saved)."""
    monkeypatch.delenv("RANK", raising=False)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)


def test_under_torchrun_the_stop_message_names_the_grace_period_once(monkeypatch, capsys):
    monkeypatch.setattr(common, "torchrun_reads_timeout", lambda: True)  # torch 2.13's does; 2.11's does not
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    monkeypatch.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "45")
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        with StopRequest():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
    out = capsys.readouterr().out
    assert out.count("stop requested") == 1 and "torchrun kills the processes 45 s after passing a stop on" in out
    monkeypatch.setenv("PET_SHUTDOWN_TIMEOUT", "600")  # torchrun --shutdown-timeout's variable, read before the other
    assert common.torchrun_stop_timeout() == 600.0


def join(rank, world, port):
    """Join a gloo group of `world` processes as torchrun's process `rank` would."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    distributed.setup()


def record(main, rank, folder):
    """Run a @cli main as a torchrun process would, and write what it ends with to folder/RANK.json: its exit
    code (or the exception a traceback would show) and its stderr."""
    err, sys.stderr = sys.stderr, io.StringIO()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    except BaseException as e:  # noqa: BLE001 (what torchrun would print as a traceback)
        code = f"raised {type(e).__name__}"
    text, sys.stderr = sys.stderr.getvalue(), err
    with open(os.path.join(folder, f"{rank}.json"), "w") as f:
        json.dump({"code": code, "stderr": text}, f)


def peer_dies(rank, world, port, folder):
    """Process 1 fails with an InputError (one line, exit 2); process 0 is waiting in a collective meanwhile."""
    join(rank, world, port)

    @cli
    def main():
        if rank == 1:
            time.sleep(0.5)  # process 0 is in the barrier by now
            raise InputError("data.jsonl: no such file")
        distributed.barrier()

    record(main, rank, folder)
    os._exit(0)  # the group is broken: no clean leave()


@pytest.mark.slow
def test_a_process_that_loses_its_peer_says_one_line(tmp_path):
    """Before: process 0 printed an 85-line traceback ending in gloo's 'Connection closed by peer', right after
    process 1's one-line error, which it buried (torchrun's own summary follows both)."""
    torch.set_num_threads(1)
    mp.spawn(peer_dies, args=(2, free_port(), str(tmp_path)), nprocs=2)
    got = {r: json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)}
    assert got[1] == {"code": 2, "stderr": "error: data.jsonl: no such file\n"}
    assert got[0]["code"] == 1, got[0]
    lines = got[0]["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: process 0: another process of this torchrun run stopped")


def own_distributed_error(rank, world, port, folder):
    """Both processes alive; each fails on its own: a store lookup that times out (a DistError, no peer lost)."""
    join(rank, world, port)

    @cli
    def main():
        store = torch.distributed.distributed_c10d._get_default_store()
        store.set_timeout(datetime.timedelta(seconds=1))
        store.get("never-set")

    record(main, rank, folder)
    for _ in range(3000):  # process 0 holds the store: leaving early would make process 1 lose its peer after all
        if rank != 0 or os.path.exists(os.path.join(folder, "1.json")):
            break
        time.sleep(0.01)
    os._exit(0)


@pytest.mark.slow
def test_a_distributed_error_of_its_own_is_not_blamed_on_another_process(tmp_path):
    """A DistError with no peer lost (here a store timeout; on GPUs an NCCL error of this process) said 'another
    process of this torchrun run stopped ... its own error above' on every process: no process had one."""
    torch.set_num_threads(1)
    mp.spawn(own_distributed_error, args=(2, free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"{rank}.json").read_text())
        assert got["code"] == "raised DistStoreError" and "another process" not in got["stderr"], got


def test_a_step_longer_than_torchruns_grace_period_is_said_once(half_right, tmp_path, monkeypatch, capsys):
    from test_reliability import tiny_run_flags

    monkeypatch.setattr(common, "torchrun_reads_timeout", lambda: True)
    monkeypatch.setattr(train_rl, "torchrun_reads_timeout", lambda: True)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")  # as torchrun's processes have it
    monkeypatch.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "0")  # every step is longer
    train_rl.main(tiny_run_flags(half_right, tmp_path / "run", 2))
    out = capsys.readouterr().out
    assert out.count("note: step 1 took") == 1 and "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=60" in out
    assert out.split("note: step")[0].splitlines()[-2].startswith("step    1 |")  # the first step's, then its save
    for module in (common, train_rl):  # a torchrun that kills after 30 s whatever the variable says
        monkeypatch.setattr(module, "torchrun_reads_timeout", lambda: False)
    monkeypatch.setattr(train_rl, "torchrun_stop_timeout", lambda: 0.0)  # (30 s: a step of the tiny run is shorter)
    train_rl.main(tiny_run_flags(half_right, tmp_path / "run1", 2))
    out = capsys.readouterr().out
    assert "does not read TORCH_ELASTIC_SHUTDOWN_TIMEOUT (newer ones do): a lower --save-every" in out
    assert common.torchrun_stop_timeout() == 30.0
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setattr(train_rl, "torchrun_stop_timeout", common.torchrun_stop_timeout)
    train_rl.main(tiny_run_flags(half_right, tmp_path / "run2", 2))
    assert "TORCH_ELASTIC_SHUTDOWN_TIMEOUT" not in capsys.readouterr().out
