"""export_hf.py: a trained checkpoint as a Hugging Face folder that transformers loads as the same model (the
oracle: its logits and its chat template), and the folders it refuses, in one line."""

import json
import os

import pytest
import torch
import transformers
from safetensors import safe_open

import export_hf
from model import GPT, GPTConfig
from test_model import hf_gpt2, hf_qwen2
from test_reliability import one_line_error
from test_tokenizer import R1_SPECIALS, R1_TEMPLATE, train
from tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """{flavour: a folder holding only a Hugging Face tokenizer}; qwen2's has R1-Distill's config and template."""
    out = {}
    for flavour in ("gpt2", "qwen2"):
        out[flavour] = tmp_path_factory.mktemp(f"tok-{flavour}")
        train(flavour).save(str(out[flavour] / "tokenizer.json"))
    config = {"bos_token": R1_SPECIALS[0], "eos_token": R1_SPECIALS[1], "pad_token": R1_SPECIALS[1],
              "chat_template": R1_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast"}
    (out["qwen2"] / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (out["qwen2"] / "generation_config.json").write_text(json.dumps({"eos_token_id": 7, "temperature": 0.6}))
    return out


def trained_checkpoint(tmp_path, tokenizers, arch, **kw):
    """A project checkpoint as train_rl.py leaves one: a Hugging Face model loaded, every weight moved (a
    transposed or misplaced tensor then changes the logits), saved in this project's format with its tokenizer."""
    hf = tmp_path / "hf"
    flavour = "gpt2" if arch == "gpt2" else "qwen2"
    vocab = Tokenizer.load(tokenizers[flavour]).vocab_size
    if arch == "gpt2":
        hf_gpt2(hf, vocab_size=vocab, **kw)
    else:
        hf_qwen2(hf, vocab_size=vocab, model_type="llama" if arch == "llama" else "qwen2", tie=arch == "qwen2-tied",
                 **{"rope_theta": 1e6, **kw})
    model = GPT.from_pretrained(str(hf))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ckpt = tmp_path / "actor"
    model.save(str(ckpt))
    Tokenizer.load(tokenizers[flavour]).save(str(ckpt))
    return model.eval(), ckpt


@pytest.mark.parametrize("arch", ["qwen2", "qwen2-tied", "llama", "gpt2"])
def test_transformers_loads_the_export_as_the_same_model(tokenizers, tmp_path, arch, capsys):
    model, ckpt = trained_checkpoint(tmp_path, tokenizers, arch)
    out = tmp_path / "export"
    export_hf.main(["--ckpt", str(ckpt), "--out", str(out), "--dtype", "fp32"])
    assert "reads back as" in capsys.readouterr().out
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert theirs.config.model_type == ("qwen2" if arch.startswith("qwen2") else arch)
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (theirs(ids).logits - model(ids)).abs().max().item() < 1e-5
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):  # verbatim, where kept
        assert (out / name).exists() == (ckpt / name).exists()
        assert not (out / name).exists() or (out / name).read_bytes() == (ckpt / name).read_bytes()
    if arch == "qwen2":  # the chat template a served model formats prompts with: R1's, as this project renders it
        chat = [{"role": "user", "content": "What is 1+2?"}]
        prompt = transformers.AutoTokenizer.from_pretrained(str(out)).apply_chat_template(
            chat, tokenize=False, add_generation_prompt=True)
        assert prompt == Tokenizer.load(ckpt).apply_chat_template(chat) == \
            f"{R1_SPECIALS[0]}{R1_SPECIALS[2]}What is 1+2?{R1_SPECIALS[3]}<think>\n"


@pytest.mark.parametrize("arch, kw, fields", [
    # fields a reader defaults when missing or wrong, each set here to a value other than that default:
    # GPT-2's n_inner (default 4 * n_embd = 128) and layer_norm_epsilon (1e-5); Llama's head_dim (default
    # hidden_size / heads = 8) and rms_norm_eps (1e-6)
    ("gpt2", dict(n_inner=48, layer_norm_epsilon=1e-3), {"n_inner": 48, "layer_norm_epsilon": 1e-3}),
    ("llama", dict(head_dim=16, rms_norm_eps=1e-4), {"head_dim": 16, "rms_norm_eps": 1e-4}),
])
def test_the_exported_config_keeps_the_fields_a_reader_would_otherwise_default(tokenizers, tmp_path, arch, kw, fields,
                                                                               capsys):
    model, ckpt = trained_checkpoint(tmp_path, tokenizers, arch, **kw)
    out = tmp_path / "export"
    export_hf.main(["--ckpt", str(ckpt), "--out", str(out), "--dtype", "fp32"])
    written = json.loads((out / "config.json").read_text())
    assert {k: written[k] for k in fields} == fields
    tok = Tokenizer.load(ckpt)  # what generate() in transformers and vLLM start and stop on
    assert (written["bos_token_id"], written["eos_token_id"]) == (tok.bos_id, tok.eos_id)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (theirs(ids).logits - model(ids)).abs().max().item() < 1e-5


def test_the_default_export_is_bf16_and_an_earlier_one_is_replaced_only_when_asked(tokenizers, tmp_path, capsys):
    model, ckpt = trained_checkpoint(tmp_path, tokenizers, "qwen2")
    out = tmp_path / "export"
    export_hf.main(["--ckpt", str(ckpt), "--out", str(out)])
    capsys.readouterr()
    with safe_open(out / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
        assert torch.equal(f.get_tensor("model.layers.1.self_attn.k_proj.bias"),
                           model.blocks[1].attn.k.bias.detach().to(torch.bfloat16))
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(out)], capsys)
    assert "already holds a Hugging Face export; pick an empty or new --out, or replace that export with " \
           "--overwrite" in err
    export_hf.main(["--ckpt", str(ckpt), "--out", str(out), "--dtype", "fp32", "--overwrite"])
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float32"
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(ckpt), "--overwrite"], capsys)
    assert "is the checkpoint itself, which the export would replace; give another folder" in err
    run = tmp_path / "run"  # a train_rl.py run folder: its saves replace checkpoint/, --resume refuses strangers
    (run / "checkpoint" / "actor").mkdir(parents=True)
    (run / "log.jsonl").write_text("")
    for inside in (run / "checkpoint" / "hf", run / "hf"):
        err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(inside)], capsys)
        assert f"is inside the run folder {run}: its next save would delete an export" in err
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(tmp_path / "link")], capsys)
    assert f"is a link to {tmp_path / 'nowhere'}, which does not exist; make that folder or give another --out" in err
    (out / "notes.txt").write_text("mine")
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(out), "--overwrite"], capsys)
    assert "holds files that are not a Hugging Face export's (notes.txt)" in err


def test_an_export_that_does_not_read_back_as_the_checkpoint_is_an_error(tokenizers, tmp_path, monkeypatch, capsys):
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "llama")
    capsys.readouterr()
    real = export_hf.hf_tensors

    def swapped(config, tensors):  # a mapping bug: two layers' MLP down-projections trade places
        out = real(config, tensors)
        a, b = "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"
        out[a], out[b] = out[b], out[a]
        return out

    monkeypatch.setattr(export_hf, "hf_tensors", swapped)
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(tmp_path / "export")], capsys)
    assert "does not read back as" in err and "['blocks.0.mlp.down.weight', 'blocks.1.mlp.down.weight']" in err


def test_an_export_whose_config_does_not_read_back_is_an_error(tokenizers, tmp_path, monkeypatch, capsys):
    """Every tensor right, the config another model's (a field bug in model.hf_config): refused, config.json gone."""
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "llama")
    capsys.readouterr()
    real = export_hf.hf_config
    monkeypatch.setattr(export_hf, "hf_config", lambda *args: {**real(*args), "rms_norm_eps": 1e-5})  # ours: 1e-6
    out = tmp_path / "export"
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(out)], capsys)
    assert "does not read back as" in err and "its config differs; tensors differ or are missing: []" in err
    assert not (out / "config.json").exists()


def test_an_export_interrupted_while_it_reads_back_leaves_no_folder_that_loads(tokenizers, tmp_path, monkeypatch,
                                                                                 capsys):
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "qwen2")
    out = tmp_path / "export"
    real = export_hf.read_checkpoint

    def interrupted(path):  # a Ctrl-C during the read-back, after config.json was written
        if path == str(out):
            assert (out / "config.json").exists()
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(export_hf, "read_checkpoint", interrupted)
    with pytest.raises(SystemExit) as e:  # cli() words a Ctrl-C as exit status 130
        export_hf.main(["--ckpt", str(ckpt), "--out", str(out)])
    assert e.value.code == 130
    assert (out / "model.safetensors").exists() and not (out / "config.json").exists()


def test_an_overwrite_cut_short_leaves_no_config_beside_missing_weights(tokenizers, tmp_path, monkeypatch, capsys):
    """--overwrite deletes the earlier export's config.json first: stopped after one deletion, the folder is no
    model a tool would load with some of its files gone."""
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "qwen2")
    out = tmp_path / "export"
    export_hf.main(["--ckpt", str(ckpt), "--out", str(out)])
    real, removed = os.remove, []

    def remove_then_stop(path):
        if removed:
            raise KeyboardInterrupt
        removed.append(os.path.basename(path))
        real(path)

    monkeypatch.setattr(os, "remove", remove_then_stop)
    with pytest.raises(SystemExit) as e:
        export_hf.main(["--ckpt", str(ckpt), "--out", str(out), "--overwrite"])
    monkeypatch.undo()
    assert e.value.code == 130 and removed == ["config.json"] and not (out / "config.json").exists()


@pytest.mark.parametrize("shape", [
    dict(norm="layernorm", pos="learned", mlp="gelu", qkv_bias=True, bias=True, head_dim=16),  # GPT-2 derives head_dim
    dict(norm="rmsnorm", pos="rope", mlp="swiglu", qkv_bias=True, bias=False, head_dim=16),  # so does Qwen2
    dict(norm="rmsnorm", pos="rope", mlp="swiglu", qkv_bias=True, bias=True),  # o_proj/MLP biases: not qwen2's
])
def test_a_shape_no_architecture_holds_is_refused_before_anything_is_written(tokenizers, tmp_path, shape, capsys):
    flavour = "gpt2" if shape["norm"] == "layernorm" else "qwen2"
    ckpt, out = tmp_path / "ckpt", tmp_path / "export"
    config = GPTConfig(vocab_size=Tokenizer.load(tokenizers[flavour]).vocab_size, n_layer=1, n_head=2, n_embd=16,
                       n_inner=32, max_seq_len=32, **shape)  # head_dim 16 * 2 heads is not n_embd 16
    GPT(config).save(str(ckpt))
    Tokenizer.load(tokenizers[flavour]).save(str(ckpt))
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(out)], capsys)
    assert "no Hugging Face architecture has this model's shape" in err and not out.exists()


def test_what_cannot_be_exported_is_refused_in_one_line(half_right, tokenizers, tmp_path, capsys):
    out = str(tmp_path / "export")
    err = one_line_error(export_hf.main, ["--ckpt", str(half_right), "--out", out], capsys)  # the toy's tokenizer
    assert "has the toy's byte-level tokenizer (tokenizer_bytes.json)" in err
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "qwen2")
    critic = tmp_path / "critic"
    GPT.from_pretrained(str(ckpt), value_head=True).save(str(critic))
    capsys.readouterr()  # transformers' progress bars while the folder was made
    assert "is a critic (value-head) checkpoint" in one_line_error(export_hf.main, ["--ckpt", str(critic), "--out", out],
                                                                    capsys)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "norm": "layernorm"}))  # no architecture has this shape
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", out], capsys)
    assert "no Hugging Face architecture has this model's shape (norm layernorm, positions rope, MLP swiglu" in err


def test_a_refused_export_leaves_no_folder_that_loads(tokenizers, tmp_path, monkeypatch, capsys):
    """The read-back refused the export: transformers, vLLM or lm-eval must not load that wrong model anyway."""
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "llama")
    capsys.readouterr()
    real = export_hf.hf_tensors

    def swapped(config, tensors):
        out = real(config, tensors)
        a, b = "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"
        out[a], out[b] = out[b], out[a]
        return out

    monkeypatch.setattr(export_hf, "hf_tensors", swapped)
    out = tmp_path / "export"
    assert "does not read back as" in one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(out)], capsys)
    assert not (out / "config.json").exists()
    with pytest.raises((OSError, ValueError)):  # no config.json: transformers finds no model there
        transformers.AutoModelForCausalLM.from_pretrained(str(out))


def test_overwrite_replaces_what_a_killed_export_left(tokenizers, tmp_path, capsys):
    """A kill during the weights' save leaves the safetensors library's temp file (.tmpXXXXXX) in --out."""
    _, ckpt = trained_checkpoint(tmp_path, tokenizers, "qwen2")
    out = tmp_path / "export"
    out.mkdir()
    (out / ".tmpAhLirt").write_bytes(b"\0" * 100)  # what a SIGKILL mid-save left (seen on a real kill)
    capsys.readouterr()
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(out)], capsys)
    assert "already holds a Hugging Face export" in err
    export_hf.main(["--ckpt", str(ckpt), "--out", str(out), "--overwrite"])
    assert not (out / ".tmpAhLirt").exists() and (out / "config.json").exists()


def test_weights_past_the_dtypes_range_are_refused(tokenizers, tmp_path, capsys):
    model, _ = trained_checkpoint(tmp_path, tokenizers, "qwen2")
    with torch.no_grad():
        model.blocks[0].mlp.down.weight[0, 0] = 1e5  # fp16's largest finite value is 65504
    ckpt = tmp_path / "big"
    model.save(str(ckpt))
    Tokenizer.load(tmp_path / "actor").save(str(ckpt))
    capsys.readouterr()
    err = one_line_error(export_hf.main, ["--ckpt", str(ckpt), "--out", str(tmp_path / "e"), "--dtype", "fp16"],
                         capsys)
    assert "['blocks.0.mlp.down.weight'] hold values that are not finite in fp16" in err
