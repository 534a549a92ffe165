import json

import pytest

import gpu_check
import memory
import runs


def test_tiny_run_on_cpu_fills_every_number(tmp_path, monkeypatch):
    # The GPU script's whole path (the paper preset: bf16 autocast, a bf16 rollout copy, gradient checkpointing,
    # token-budget micro-batches) on a tiny model.
    out = tmp_path / "check.json"
    monkeypatch.setattr(memory, "free_bytes", lambda path: 0)  # it saves no checkpoint, so needs no room for one
    gpu_check.main(["--tiny", "--device", "cpu", "--lengths", "16", "--out", str(out)])
    r = json.loads(out.read_text())["runs"]["16"]
    assert set(r["step_seconds"]) == {"sample", "score", "reference", "critic", "update", "total", "wall"}
    assert r["step_seconds"]["wall"] >= r["step_seconds"]["total"]  # the stages, and what runs between them
    # A random model over 512 tokens says EOS about once in 512 draws: nearly every response runs to 16.
    assert 15 < r["response_length_mean"] <= 16
    assert r["memory_estimate_gib"] > 0 and r["memory_estimate_items_gib"]["rollout copy"] > 0
    assert runs.check_disk.__name__ == "check_disk"  # put back


def test_a_repeated_length_is_refused_before_any_measurement(capsys):
    """Both runs of one length share a folder: the second failed after the first had spent its GPU minutes."""
    with pytest.raises(SystemExit) as e:
        gpu_check.main(["--device", "cpu", "--tiny", "--lengths", "8,8"])
    assert e.value.code == 2 and "--lengths 8,8 repeats a length; give each once" in capsys.readouterr().err


@pytest.mark.parametrize("flags, rc, says", [(["--help"], 0, "bash tools/gpu_session.sh --smoke"),
                                             (["--smok"], 2, "error: unknown flag --smok"),
                                             (["--smoke", "extra"], 2, "error: one flag at most")])
def test_gpu_session_explains_itself_and_refuses_unknown_flags(tmp_path, flags, rc, says):
    """--help (or a typo) ran the whole GPU session: up to 550 s of a lent GPU's time."""
    import subprocess
    from pathlib import Path
    script = Path(__file__).parent.parent / "tools" / "gpu_session.sh"
    result = subprocess.run(["bash", str(script), *flags], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out")})
    assert result.returncode == rc and says in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()  # nothing measured, nothing written
