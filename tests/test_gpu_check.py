import json

import gpu_check


def test_tiny_run_on_cpu_fills_every_number(tmp_path):
    # The GPU script's whole path (bf16 weights, bf16 autocast PPO with gradient checkpointing) on a tiny model.
    out = tmp_path / "check.json"
    gpu_check.main(["--tiny", "--device", "cpu", "--new-tokens", "8", "--max-new-tokens", "16", "--out", str(out)])
    r = json.loads(out.read_text())
    assert set(r["decode_tokens_per_s"]) == {"1", "16", "64"} and min(r["decode_tokens_per_s"].values()) > 0
    assert set(r["ppo_step_seconds"]) == {"sample", "score", "reference", "critic", "update", "total"}
    # A random model over 512 tokens says EOS about once in 512 draws: nearly every response runs to 16.
    assert 15 < r["ppo_response_length_mean"] <= 16
    assert r["memory_estimate_gib"] > 0
