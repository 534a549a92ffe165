import json
import os

import pytest

import demo
from common import InputError


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    demo.main(["--quick", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())["results"]
    assert list(results) == ["base", "phase1", "phase2"]
    for name in ("training_curves.png", "tradeoff.png", "results.md", "phase2_set.jsonl"):
        assert os.path.getsize(out / name) > 0
    assert len((out / "phase2_set.jsonl").read_text().splitlines()) == 8
    printed = capsys.readouterr().out
    assert "| all |" in printed and "phase1 -> phase2: accuracy" in printed

    demo.main(["--quick", "--out", str(out)])  # a second run reuses every finished stage
    again = capsys.readouterr().out
    assert "reusing" in again and "$ python train_rl.py" not in again and "$ python eval.py" not in again


def test_a_run_folder_from_another_base_settings_or_preset_is_not_reused(tmp_path, capsys):
    real = demo.run_stamp(demo.BASE, demo.SETTINGS["quick"])
    other_preset = {**real, "presets": {**real["presets"], "phase2": {**real["presets"]["phase2"], "actor_lr": 1}}}
    for i, stamp in enumerate([{**real, "base_sha256": "0" * 64}, other_preset]):
        out = tmp_path / f"demo{i}"
        out.mkdir()
        (out / "demo.json").write_text(json.dumps(stamp))
        with pytest.raises(SystemExit) as e:
            demo.main(["--quick", "--out", str(out)])
        assert e.value.code == 2 and "another base model, settings or presets; rerun with --fresh" in capsys.readouterr().err
        assert not (out / "data").exists()  # refused before any stage ran


def test_claim_out_dir_accepts_its_own_stamp(tmp_path):
    stamp = {"base_sha256": "ab" * 32, **demo.SETTINGS["quick"]}
    demo.claim_out_dir(str(tmp_path / "d"), stamp)
    assert json.loads((tmp_path / "d" / "demo.json").read_text()) == stamp
    demo.claim_out_dir(str(tmp_path / "d"), stamp)  # the same stamp again: reuse allowed
    with pytest.raises(InputError):
        demo.claim_out_dir(str(tmp_path / "d"), {**stamp, "phase1_steps": 9})
