import json
import os

import pytest

import demo


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
