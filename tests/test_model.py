import json
import os
import subprocess
import sys

import pytest
import torch
import transformers  # the parity oracle, a dev requirement: these tests run, never skip

from model import GPT, CheckpointError, GPTConfig


def hf_gpt2(path, **kw):
    cfg = transformers.GPT2Config(**{"vocab_size": 97, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4, **kw})
    torch.manual_seed(0)
    m = transformers.GPT2LMHeadModel(cfg).eval()
    _randomize_biases(m)
    m.save_pretrained(path)
    return m


def hf_qwen2(path, tie=False, model_type="qwen2", **kw):
    args = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                tie_word_embeddings=tie, rms_norm_eps=1e-6)
    args.update(kw)
    if model_type == "qwen2":
        cfg, cls = transformers.Qwen2Config(**args), transformers.Qwen2ForCausalLM
    else:
        cfg, cls = transformers.LlamaConfig(**args), transformers.LlamaForCausalLM
    torch.manual_seed(0)
    m = cls(cfg).eval()
    _randomize_biases(m)
    m.save_pretrained(path)
    return m


def _randomize_biases(m):
    # HF initialises biases and norm weights to 0/1: randomise them so a dropped bias or a misplaced
    # norm weight shows up as a logit difference.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)


def hf_logits(m, idx, mask=None):
    with torch.no_grad():
        return m(input_ids=idx, attention_mask=mask).logits


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: hf_gpt2(p), id="gpt2"),
    pytest.param(lambda p: hf_qwen2(p, tie=False), id="qwen2-gqa-untied"),
    pytest.param(lambda p: hf_qwen2(p, tie=True), id="qwen2-gqa-tied"),
    pytest.param(lambda p: hf_qwen2(p, num_key_value_heads=4), id="qwen2-mha"),
    pytest.param(lambda p: hf_qwen2(p, model_type="llama"), id="llama"),
])
def test_logit_parity_with_transformers(tmp_path, make):
    ref = make(tmp_path)
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    idx = torch.randint(0, ours.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(idx)
    want = hf_logits(ref, idx)
    assert (got - want).abs().max().item() < 1e-4


def test_left_padded_batch_matches_transformers_and_unpadded_rows(tmp_path):
    ref = hf_qwen2(tmp_path)
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    rows = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14]]
    idx, mask = left_pad(rows, pad=0)
    with torch.no_grad():
        got = ours(idx, attention_mask=mask)
        want = ref(input_ids=idx, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    real = mask.bool()
    assert (got[real] - want[real]).abs().max().item() < 1e-4
    for i, row in enumerate(rows):  # a padded row gives the same logits as the row alone
        with torch.no_grad():
            alone = ours(torch.tensor([row]))
        assert (got[i, -len(row):] - alone[0]).abs().max().item() < 1e-5


def left_pad(rows, pad):
    T = max(len(r) for r in rows)
    idx = torch.tensor([[pad] * (T - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    return idx, mask


@pytest.mark.parametrize("cfg", [
    GPTConfig(vocab_size=50, n_layer=2, n_head=4, n_kv_head=4, n_embd=32, n_inner=64, max_seq_len=64),
    GPTConfig(vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, n_inner=48, max_seq_len=64,
              norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, tie_embeddings=False),
    # 3 query heads per KV head (Qwen2-1.5B has 6): a decode step's head folding sees groups unlike KV heads
    GPTConfig(vocab_size=50, n_layer=2, n_head=6, n_kv_head=2, n_embd=48, n_inner=48, max_seq_len=64,
              norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, tie_embeddings=False),
], ids=["gpt2-style", "qwen2-style", "gqa-3-per-kv-head"])
def test_kv_cache_prefill_then_decode_equals_full_forward(cfg):
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    rows = [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10], [11, 12, 13, 14, 15]]
    prompt, mask = left_pad(rows, pad=0)
    new = torch.randint(1, 50, (3, 6))  # six decode steps, one token per row each
    full_idx = torch.cat([prompt, new], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(new)], dim=1)
    with torch.no_grad():
        full = model(full_idx, attention_mask=full_mask)
        cache = model.new_cache(3, full_idx.size(1))
        steps = [model(prompt, attention_mask=mask, cache=cache)]
        for t in range(new.size(1)):
            steps.append(model(new[:, t:t + 1], attention_mask=full_mask[:, :prompt.size(1) + t + 1], cache=cache))
    incremental = torch.cat(steps, dim=1)
    real = full_mask.bool()
    assert (incremental[real] - full[real]).abs().max().item() < 1e-5


def test_kv_cache_without_mask_matches_full_forward():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, n_layer=2, n_head=2, n_embd=16, n_inner=32, max_seq_len=32)).eval()
    idx = torch.randint(0, 40, (2, 12))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache(2, 12)
        parts = [model(idx[:, :5], cache=cache), model(idx[:, 5:8], cache=cache)]
        parts += [model(idx[:, t:t + 1], cache=cache) for t in range(8, 12)]
    assert (torch.cat(parts, 1) - full).abs().max().item() < 1e-5


def test_read_safetensors_keeps_only_the_names_asked_for(tmp_path):
    import safetensors.torch
    from model import read_safetensors
    tensors = {"actor.0.exp_avg": torch.arange(3.0), "critic.0.exp_avg": torch.ones(2), "actor.0.step": torch.zeros(1)}
    safetensors.torch.save_file(tensors, str(tmp_path / "o.safetensors"))
    kept = dict(read_safetensors(str(tmp_path / "o.safetensors"), keep=lambda name: name.startswith("actor.")))
    assert kept.keys() == {"actor.0.exp_avg", "actor.0.step"} and torch.equal(kept["actor.0.exp_avg"], torch.arange(3.0))


def test_save_load_round_trip_is_exact_and_atomic(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, n_layer=2, n_head=2, n_embd=16, n_inner=32, max_seq_len=32))
    model.save(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]  # no temp files left
    back = GPT.from_pretrained(str(tmp_path))
    assert back.config == model.config
    idx = torch.randint(0, 40, (2, 9))
    assert torch.equal(back(idx), model(idx))
    assert back.lm_head.weight is back.tok_emb.weight  # the tie survives the round trip


def test_critic_from_actor_shares_trunk_and_has_fresh_head(tmp_path):
    hf_qwen2(tmp_path, tie=True)
    actor = GPT.from_pretrained(str(tmp_path))
    critic = GPT.from_pretrained(str(tmp_path), value_head=True)
    assert not hasattr(critic, "lm_head")
    idx = torch.randint(0, 101, (2, 7))
    values = critic(idx)
    assert values.shape == (2, 7)
    assert torch.equal(critic.hidden_states(idx), actor.hidden_states(idx))
    critic.save(str(tmp_path / "critic"))  # a saved critic reloads as a critic, head included
    back = GPT.from_pretrained(str(tmp_path / "critic"), value_head=True)
    assert torch.equal(back(idx), values)
    with pytest.raises(CheckpointError, match="is a critic .value-head. checkpoint, not a policy"):
        GPT.from_pretrained(str(tmp_path / "critic"))  # where a policy is expected


def test_weights_holding_nan_or_inf_are_refused_at_load(tmp_path):
    model = GPT(GPTConfig(vocab_size=40, n_layer=1, n_head=2, n_embd=16, n_inner=32, max_seq_len=32))
    for bad in (float("nan"), float("inf")):
        with torch.no_grad():
            model.blocks[0].mlp.up.weight[3, 5] = bad
        model.save(str(tmp_path / "damaged"))
        with pytest.raises(CheckpointError, match="tensor .blocks.0.mlp.up.weight. holds NaN or inf"):
            GPT.from_pretrained(str(tmp_path / "damaged"))


def test_gradient_checkpointing_gives_identical_gradients():
    cfg = GPTConfig(vocab_size=40, n_layer=3, n_head=2, n_kv_head=1, n_embd=16, n_inner=32, max_seq_len=32,
                    norm="rmsnorm", pos="rope", mlp="swiglu", bias=False)
    torch.manual_seed(0)
    a = GPT(cfg)
    b = GPT(cfg)
    b.load_state_dict(a.state_dict())
    b.grad_checkpointing = True
    idx = torch.randint(0, 40, (2, 10))
    for m in (a, b):
        m.train()
        m(idx).logsumexp(-1).mean().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), n


def test_bf16_autocast_forward_close_to_fp32():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, n_layer=2, n_head=2, n_embd=32, n_inner=64, max_seq_len=32,
                          norm="rmsnorm", pos="rope", mlp="swiglu", bias=False)).eval()
    idx = torch.randint(0, 40, (2, 10))
    with torch.no_grad():
        ref = model(idx)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(idx)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max().item() < 0.05


def test_load_in_bf16_casts_every_tensor(tmp_path):
    hf_qwen2(tmp_path)
    model = GPT.from_pretrained(str(tmp_path), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model(torch.tensor([[1, 2, 3]])).dtype == torch.bfloat16


@pytest.mark.parametrize("model_type", ["qwen2", "llama"])  # llama has no biases: its smallest tensors are the norms
def test_a_checkpoint_in_mixed_dtypes_loads_in_its_matrices_dtype(tmp_path, model_type):
    """fp32 norms beside bf16 matrices (as some checkpoints store them) loaded "as stored" crashed at the
    first matmul (mat1 and mat2 must have the same dtype)."""
    import safetensors.torch
    hf = hf_qwen2(tmp_path, model_type=model_type)
    tensors = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    mixed = {k: v if "norm" in k else v.to(torch.bfloat16) for k, v in tensors.items()}
    assert {v.dtype for v in mixed.values()} == {torch.float32, torch.bfloat16}
    safetensors.torch.save_file(mixed, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    model = GPT.from_pretrained(str(tmp_path))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    ids = torch.tensor([[1, 2, 3]])
    expected = GPT.from_pretrained(str(tmp_path), dtype=torch.bfloat16)(ids)
    assert torch.equal(model(ids), expected) and torch.isfinite(expected).all()


# ---------------------------------------------------------------------------------------------------
# Bad inputs: one clear error naming the problem


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        GPT.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="config.json"):
        GPT.from_pretrained(str(tmp_path))


def test_unsupported_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(CheckpointError, match="unsupported model_type 'mamba'"):
        GPT.from_pretrained(str(tmp_path))


def test_missing_weights_file(tmp_path):
    hf_qwen2(tmp_path)
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing weights file"):
        GPT.from_pretrained(str(tmp_path))


def _rewrite_weights(path, edit):
    from safetensors.torch import load_file, save_file
    f = os.path.join(path, "model.safetensors")
    tensors = load_file(f)
    edit(tensors)
    save_file(tensors, f, metadata={"format": "pt"})


def test_missing_tensor_is_named(tmp_path):
    hf_qwen2(tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensor.*blocks\.1\.mlp\.up\.weight"):
        GPT.from_pretrained(str(tmp_path))


def test_wrong_shape_is_named(tmp_path):
    hf_qwen2(tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.update({"model.norm.weight": torch.ones(7)}))
    with pytest.raises(CheckpointError, match=r"norm_f\.weight.*\(7,\).*\(32,\)"):
        GPT.from_pretrained(str(tmp_path))


def test_unexpected_tensor_is_named(tmp_path):
    hf_qwen2(tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.update({"model.extra.weight": torch.ones(3)}))
    with pytest.raises(CheckpointError, match="unexpected tensor 'model.extra.weight'"):
        GPT.from_pretrained(str(tmp_path))


def test_unknown_field_in_own_config(tmp_path):
    GPT(GPTConfig(vocab_size=8, n_layer=1, n_head=1, n_embd=8, n_inner=8, max_seq_len=8)).save(str(tmp_path))
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["n_lyer"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="n_lyer"):
        GPT.from_pretrained(str(tmp_path))


def test_missing_field_in_own_config(tmp_path):
    # An rmsnorm model without biases has the same tensors under either norm: a missing "norm" would load as
    # layernorm, the default, and give other logits without a word.
    GPT(GPTConfig(vocab_size=8, n_layer=1, n_head=1, n_embd=8, n_inner=8, max_seq_len=8, norm="rmsnorm",
                  bias=False)).save(str(tmp_path))
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["norm"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"fields \['norm'\] are missing"):
        GPT.from_pretrained(str(tmp_path))


PEAK_RSS_SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[2])
from model import GPT, GPTConfig
def status_mb(field):  # VmHWM is per address space; ru_maxrss would carry pytest's peak across exec
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024
with torch.device("meta"):  # pay torch's one-off lazy initialisation before the baseline
    GPT(GPTConfig(vocab_size=8, n_layer=1, n_head=1, n_embd=8, n_inner=8))
base = status_mb("VmRSS")
m = GPT.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
touch = [p.max() for p in m.parameters()]  # make every (possibly mmapped) page resident
print(base, status_mb("VmHWM"), sum(p.numel() for p in m.parameters()) * 2 / 2**20)
"""


def test_bf16_load_never_holds_an_fp32_copy(tmp_path):
    # A 43M-parameter model stored in bf16 (86 MB): loading must peak near one bf16 copy; building the
    # model in fp32 first would add 171 MB.
    cfg = GPTConfig(vocab_size=32000, n_layer=4, n_head=8, n_kv_head=2, n_embd=512, n_inner=1536,
                    max_seq_len=256, norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, tie_embeddings=False)
    with torch.device("meta"):
        model = GPT(cfg)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    for p in model.parameters():
        p.data.zero_()  # values do not matter, only bytes; finite ones (NaN weights are refused)
    model.save(str(tmp_path))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, str(tmp_path), repo],
                         capture_output=True, text=True, check=True).stdout.split()
    base, peak, weights = map(float, out)
    assert peak - base < 1.5 * weights, (base, peak, weights)


def test_truncated_weights_file_is_a_clear_error(tmp_path):
    GPT(GPTConfig(vocab_size=8, n_layer=1, n_head=1, n_embd=8, n_inner=8, max_seq_len=8)).save(str(tmp_path))
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        GPT.from_pretrained(str(tmp_path))


@pytest.mark.parametrize("tied", [True, False])
def test_the_fused_sampling_copy_computes_what_the_model_does(tied):
    """bf16 runs sample from inference_copy (q|k|v and gate|up fused); a swapped k/v or gate/up slice, or a
    refresh that misses a tensor, would sample from another model than the one PPO trains."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=40, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, n_inner=48, max_seq_len=32,
                    norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, qkv_bias=True, tie_embeddings=tied)
    model, idx = GPT(cfg), torch.randint(0, 40, (2, 7))
    copy = model.inference_copy(torch.float32, fused=True)
    assert hasattr(copy.blocks[0].attn, "qkv") and hasattr(copy.blocks[0].mlp, "gate_up")
    assert torch.allclose(copy(idx), model(idx), atol=1e-5)
    with torch.no_grad():  # an update, then the refresh
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert not torch.allclose(copy(idx), model(idx), atol=1e-3)
    copy.load_weights_from(model)
    assert torch.allclose(copy(idx), model(idx), atol=1e-5)


def test_a_qwen2_folder_of_transformers_5_keeps_its_rope_theta(tmp_path):
    """transformers 5 writes rope_theta only inside rope_parameters (Qwen2.5's 1e6): read as the default 10000,
    every position would rotate at the wrong speed."""
    ref = hf_qwen2(tmp_path, rope_theta=1e6)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["rope_parameters"]["rope_theta"] == 1e6 and "rope_theta" not in raw  # how transformers 5 writes it
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    assert ours.config.rope_theta == 1e6
    idx = torch.randint(0, 101, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(idx) - hf_logits(ref, idx)).abs().max().item() < 1e-4


def test_a_gpt2_config_without_tie_word_embeddings_is_tied(tmp_path):
    """GPT-2's own config.json has no tie_word_embeddings and its weights no lm_head: tied, as transformers reads it."""
    ref = hf_gpt2(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    del raw["tie_word_embeddings"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    assert ours.config.tie_embeddings and ours.lm_head.weight is ours.tok_emb.weight
    idx = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(idx) - hf_logits(ref, idx)).abs().max().item() < 1e-4


def test_a_llama_folder_with_its_own_head_dim_keeps_it(tmp_path):
    """Llama's head_dim may differ from hidden_size / heads (here 16, not 32 / 4 = 8): q/k/v are then (64, 32)."""
    ref = hf_qwen2(tmp_path, model_type="llama", head_dim=16)
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    assert ours.config.head_dim == 16
    idx = torch.randint(0, 101, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(idx) - hf_logits(ref, idx)).abs().max().item() < 1e-4


@pytest.mark.parametrize("make, field, want", [
    (lambda p: hf_gpt2(p), "layer_norm_epsilon", 1e-5),  # transformers' defaults, which a folder may leave out
    (lambda p: hf_qwen2(p, rms_norm_eps=1e-6), "rms_norm_eps", 1e-6),
    (lambda p: hf_qwen2(p, model_type="llama", num_key_value_heads=4), "num_key_value_heads", 4),  # absent: MHA
    (lambda p: hf_qwen2(p, tie=False), "tie_word_embeddings", False),  # unlike GPT-2's, a Qwen2 head is its own
])
def test_a_field_left_out_of_config_json_takes_transformers_default(tmp_path, make, field, want):
    make(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    del raw[field]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    theirs = transformers.AutoConfig.from_pretrained(str(tmp_path))
    assert getattr(theirs, field) == want
    config = GPT.from_pretrained(str(tmp_path)).config
    assert {"layer_norm_epsilon": config.norm_eps, "rms_norm_eps": config.norm_eps,
            "num_key_value_heads": config.n_kv_head, "tie_word_embeddings": config.tie_embeddings}[field] == want


def test_a_gpt2_folder_with_exact_gelu_is_refused(tmp_path):
    """activation_function "gelu" is erf GELU, not the tanh one this model computes: refused, not loaded wrong."""
    hf_gpt2(tmp_path, activation_function="gelu")
    with pytest.raises(CheckpointError, match="activation_function 'gelu' not supported"):
        GPT.from_pretrained(str(tmp_path))


@pytest.mark.parametrize("raw, message", [
    ({"model_type": "qwen2", "hidden_act": "gelu"}, "hidden_act 'gelu' not supported"),
    ({"model_type": "qwen2", "rope_scaling": {"type": "linear", "factor": 2.0}}, "rope scaling .* not supported"),
    ({"model_type": "qwen2", "use_sliding_window": True}, "use_sliding_window=true not supported"),
    ({"model_type": "llama", "mlp_bias": True}, "llama attention_bias/mlp_bias not supported"),
    ({"model_type": "gpt2", "reorder_and_upcast_attn": True}, "reorder_and_upcast_attn unsupported"),
])
def test_a_config_this_model_would_compute_wrong_is_refused(tmp_path, raw, message):
    """Refused from config.json alone, before any weight is read (the folder holds none)."""
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=message):
        GPT.from_pretrained(str(tmp_path))


def test_a_qwen2_config_without_rope_settings_rotates_at_10000():
    from model import config_from_qwen2
    raw = {"model_type": "qwen2", "vocab_size": 11, "num_hidden_layers": 1, "num_attention_heads": 2,
           "hidden_size": 8, "intermediate_size": 16, "max_position_embeddings": 32}
    assert config_from_qwen2(raw).rope_theta == 10000.0  # transformers' default, RoPE's original base


@pytest.mark.parametrize("entry, data, message", [
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}, 16, "its size does not match its shape"),  # 16 bytes
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, 15, "is truncated"),  # one byte short of its end
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16, 32]}, 32, "expected {dtype, shape, data_offsets}"),
    ({"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]}, 16, "expected {dtype, shape, data_offsets}"),
])
def test_a_safetensors_header_that_does_not_describe_its_bytes_is_refused(tmp_path, entry, data, message):
    """Hand-made files: an 8-byte little-endian header length, the JSON header, then the data bytes."""
    from model import read_safetensors
    header = json.dumps({"w": entry}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(data))
    with pytest.raises(CheckpointError, match=message):
        list(read_safetensors(str(path)))
    ok = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}  # the same file made right reads exactly
    header = json.dumps({"w": ok}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + torch.arange(4.0).numpy().tobytes())
    assert [(n, t.tolist()) for n, t in read_safetensors(str(path))] == [("w", [0.0, 1.0, 2.0, 3.0])]


def test_a_safetensors_header_that_is_not_an_object_is_refused(tmp_path):
    header = json.dumps([{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}]).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    from model import read_safetensors
    with pytest.raises(CheckpointError, match="not a safetensors file .the header is a JSON list, not an object"):
        list(read_safetensors(str(path)))
