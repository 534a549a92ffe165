import json
import sys

import pytest

import bench


@pytest.mark.slow  # importing transformers alone takes several seconds on a small CPU
def test_quick_bench_writes_positive_numbers(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    out = tmp_path / "sub" / "bench.json"  # the folder does not exist yet: bench.py creates it
    monkeypatch.setattr(sys, "argv", ["bench.py", "--quick", "--out", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    assert {"torch", "transformers", "threads", "cpu"} <= set(report["env"])
    assert report["max_abs_logit_diff"] < 1e-4  # both sides really ran the same weights
    results = report["results"]
    assert {"prefill 1x32", "prefill 2x16", "decode 1 @ 32 ctx", "sample b1", "sample b4", "sample toy b4"} \
        == set(results)
    for name, r in results.items():
        assert r["ours"] > 0, name
        if name != "sample toy b4":  # the toy model has no transformers counterpart
            assert r["transformers"] > 0 and r["ratio"] > 0, name
    assert report["results"]["sample toy b4"]["transformers"] is None


@pytest.mark.slow
def test_the_gpu_measurement_runs_its_code_path_on_a_tiny_model(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    out = tmp_path / "gpu.json"
    monkeypatch.setattr(sys, "argv", ["bench.py", "--gpu-path", "--tiny", "--engines", "eager,graph,compiled",
                                      "--profile", "compiled", "--out", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    assert report["max_abs_logit_diff_vs_transformers"] < 1e-4 and report["max_abs_logit_diff_fused_copy"] < 1e-4
    assert report["greedy_tokens_graph_equal_eager"] == report["greedy_tokens_compiled_equal_eager"] == "64/64"
    assert all(report[f"logprob_gap_{e}"]["max"] < 1e-5 for e in ("eager", "graph", "compiled"))  # fp32
    assert set(report["results"]) == {"batch 1", "batch 16", "batch 64"}
    assert all(row[k] > 0 for row in report["results"].values() for k in ("transformers", "eager", "graph", "compiled"))
    profile = (tmp_path / "gpu_profile.txt").read_text()  # --tiny samples 8 tokens; 64 on a GPU
    assert profile.startswith("compiled engine, batch 1, 8 new tokens") and "Self CPU time total" in profile


def test_the_kernel_summary_sorts_gpu_kernels_by_kind_per_token():
    from types import SimpleNamespace as Row
    kernels = [Row(key="nvjet_tst_64x8_64x16_4x1_v_bz_TNT", count=4, self_device_time_total=40.0),  # cuBLAS
               Row(key="triton_tem_fused_mm_0", count=2, self_device_time_total=20.0),  # inductor's own matmul
               Row(key="fmha_cutlassF_bf16_aligned_64x64_rf_sm80", count=2, self_device_time_total=30.0),
               Row(key="triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_1", count=6, self_device_time_total=6.0),
               Row(key="void at::native::tensor_kernel_scan_innermost_dim<float>", count=2, self_device_time_total=4.0)]
    assert [bench.kernel_kind(k.key) for k in kernels] == ["matrix products", "matrix products", "attention",
                                                           "fused by torch.compile", "other kernels"]
    lines = bench.kernel_summary(kernels, tokens=2, wall_us=80.0)  # 100 us of kernels over 2 tokens
    assert lines[0] == "per token: 8 kernels, 50 us of kernel time, 80 us of wall-clock"
    assert lines[1].split() == ["matrix", "products", "3.0", "kernels", "30.0", "us", "(60%)"]
    assert lines[2].split() == ["attention", "1.0", "kernels", "15.0", "us", "(30%)"]
    assert lines[3].split() == ["fused", "by", "torch.compile", "3.0", "kernels", "3.0", "us", "(6%)"]
    assert lines[4].split() == ["other", "kernels", "1.0", "kernels", "2.0", "us", "(4%)"]
    assert lines[5].split() == ["no", "kernel", "running", "30.0", "us"]


def test_help_states_defaults_of_flags_that_take_a_value_only(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert "with the GPU measurement: the batch sizes (default: 1,16,64)" in text
    assert "do not time transformers --no-greedy-check" in text  # a switch: no "(default: True)" after it
