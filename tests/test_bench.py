import json
import sys

import pytest
import torch

import bench


@pytest.mark.slow  # importing transformers alone takes several seconds on a small CPU
def test_quick_bench_writes_positive_numbers(tmp_path, monkeypatch):
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
    out = tmp_path / "gpu.json"
    monkeypatch.setattr(sys, "argv", ["bench.py", "--gpu-path", "--tiny", "--engines", "eager,graph,compiled",
                                      "--profile", "compiled", "--new-tokens", "6", "--repeats", "2", "--out", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    assert (report["new_tokens"], report["repeats"]) == (6, 2)  # the GPU path ignored both flags
    assert report["max_abs_logit_diff_vs_transformers"] < 1e-4 and report["max_abs_logit_diff_fused_copy"] < 1e-4
    assert report["greedy_tokens_graph_equal_eager"] == report["greedy_tokens_compiled_equal_eager"] == "64/64"
    assert all(report[f"logprob_gap_{e}"]["max"] < 1e-5 for e in ("eager", "graph", "compiled"))  # fp32
    assert set(report["results"]) == {"batch 1", "batch 16", "batch 64"}
    assert not (tmp_path / "gpu.json.partial").exists()  # kept only while the run is under way
    assert all(row[k] > 0 for row in report["results"].values() for k in ("transformers", "eager", "graph", "compiled"))
    profile = (tmp_path / "gpu_profile.txt").read_text()  # runs of the --new-tokens, at most 64
    assert profile.startswith("compiled engine, batch 1: ") and "from runs of 6 and 12 new tokens" in profile
    assert "Self CPU time total" in profile


def test_the_kernel_summary_sorts_gpu_kernels_by_kind_per_token():
    from types import SimpleNamespace
    gpu, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    row = lambda key, count, us, device=gpu, **kw: SimpleNamespace(key=key, count=count, self_device_time_total=us,
                                                                  device_type=device, **kw)
    long = [row("nvjet_tst_64x8_64x16_4x1_v_bz_TNT", 6, 60.0),  # cuBLAS
            row("triton_tem_fused_mm_0", 3, 30.0),  # inductor's own matmul
            row("fmha_cutlassF_bf16_aligned_64x64_rf_sm80", 3, 45.0),
            row("triton_poi_fused__scaled_dot_product_efficient_attention_constant_pad_nd_3", 3, 3.0),  # not attention
            row("triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_1", 6, 6.0),
            row("void at::native::tensor_kernel_scan_innermost_dim<float>", 3, 6.0),
            row("## Call CompiledFxGraph fgh5 ##", 3, 500.0, is_user_annotation=True),  # spans kernels: not one
            row("aten::mm", 9, 0.0, device=cpu)]
    assert [bench.kernel_kind(r.key) for r in long[:6]] == ["matrix products", "matrix products", "attention",
                                                           "fused by torch.compile", "fused by torch.compile",
                                                           "other kernels"]
    # The short run did a third of the long run's kernels (say a call's one-off work and one token, against
    # three tokens): the difference is 2 tokens' worth, 100 us of kernels, 50 us a token against 80 us of
    # wall-clock a token.
    short = [SimpleNamespace(**{**vars(r), "count": r.count // 3, "self_device_time_total": r.self_device_time_total / 3})
             for r in long]
    lines = bench.kernel_summary(bench.kernels_by_kind(short), bench.kernels_by_kind(long), tokens=2, wall_us=80.0)
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


def test_a_batch_above_64_samples_as_many_rows_as_its_tokens_per_second_count(tmp_path, monkeypatch):
    """Only 64 prompts were drawn: --batches 128 sampled 64 rows and reported twice their tokens/s."""
    rows, real = [], bench.generate
    monkeypatch.setattr(bench, "generate", lambda model, prompts, *a, **k: rows.append(len(prompts)) or
                        real(model, prompts, *a, **k))
    monkeypatch.setattr(sys, "argv", ["bench.py", "--gpu-path", "--tiny", "--engines", "graph", "--batches", "96",
                                      "--no-baseline", "--no-greedy-check", "--new-tokens", "2", "--out",
                                      str(tmp_path / "b.json")])
    bench.main()
    assert set(rows[-2:]) == {96}  # the timed runs (a first one, then the repeat)


def test_a_long_prompt_times_decoding_on_a_long_cache(tmp_path, monkeypatch):
    """--prompt-len: every sampled prompt has that many tokens (the default, 4 with --tiny, before), and the
    report says so."""
    lengths, real = set(), bench.generate
    monkeypatch.setattr(bench, "generate", lambda model, prompts, *a, **k: lengths.update(map(len, prompts)) or
                        real(model, prompts, *a, **k))
    out = tmp_path / "b.json"
    bench.main(["--gpu-path", "--tiny", "--engines", "graph", "--batches", "2", "--prompt-len", "1000",
                "--no-baseline", "--no-greedy-check", "--new-tokens", "2", "--out", str(out)])
    report = json.loads(out.read_text())
    assert lengths == {1000} and report["prompt_len"] == 1000
    # The tiny Qwen2 model (2 layers, 2 KV heads of 16 dimensions, fp32 on the CPU) by the last of 1,002 tokens:
    # k and v, 2 x 2 x 2 x 16 x 4 bytes = 512 bytes a token
    assert report["cache_bytes_per_row_at_end"] == 512 * 1002
