"""Model folders as downloads and copies damage them (git clone without git-lfs, a partial download, a
missing index, a stale shard, a config of another model): each is refused before any long work, in one line
that names the file and the fix, and never loaded as a silently different model."""

import hashlib
import json
import shutil
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

import eval as evaluation
import train_rl
from model import GPT, CheckpointError, read_checkpoint
from test_model import hf_qwen2
from test_reliability import one_line_error
from tokenizer import Tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny Qwen2 folder with a byte-level tokenizer, and problems beside it."""
    path = tmp_path_factory.mktemp("qwen2")
    hf_qwen2(path, vocab_size=Tokenizer.byte_level().vocab_size, max_position_embeddings=64)
    Tokenizer.byte_level().save(str(path))
    (path / "p.jsonl").write_text(json.dumps({"problem": "1", "answer": "1", "level": 1}) + "\n")
    return path


def copy(folder, tmp_path, name="ckpt"):
    return shutil.copytree(folder, tmp_path / name)


def shard(path):
    """Split model.safetensors into two shards and an index, as save_pretrained does for big models."""
    state = load_file(path / "model.safetensors")
    (path / "model.safetensors").unlink()
    names = sorted(state)
    files = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
             "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for f, part in files.items():
        save_file({n: state[n] for n in part}, path / f)
    weight_map = {n: f for f, part in files.items() for n in part}
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return files


def lfs_pointer(path):
    data = path.read_bytes()
    path.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                    f"size {len(data)}\n")


def refusal(path):
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(str(path))
    return str(e.value)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer_bytes.json"])
def test_a_git_lfs_pointer_is_named_with_the_fix(folder, tmp_path, name):
    path = copy(folder, tmp_path)
    lfs_pointer(path / name)
    with pytest.raises(Exception) as e:
        read_checkpoint(str(path)) if name != "tokenizer_bytes.json" else Tokenizer.load(str(path))
    assert f"{path / name} is a git-lfs pointer" in str(e.value) and "git lfs pull" in str(e.value)


def test_eval_refuses_a_damaged_second_checkpoint_before_sampling_the_first(folder, tmp_path, monkeypatch, capsys):
    # The second column's weights were read only once the first column's evaluation (hours at 8192 tokens) was over.
    broken = copy(folder, tmp_path)
    lfs_pointer(broken / "model.safetensors")
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("sampled before checking every folder"))
    err = one_line_error(evaluation.main, ["--ckpt", str(folder), str(broken), "--names", "base", "phase2", "--data",
                                           str(folder / "p.jsonl"), "--max-new-tokens", "4", "--device", "cpu"], capsys)
    assert "git-lfs pointer" in err


def test_the_dry_run_checks_the_weights_of_every_model(folder, tmp_path, capsys):
    # --dry-run read config.json alone, so a clone without git-lfs "fit" and failed once on the GPU.
    broken = copy(folder, tmp_path)
    (broken / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:-100])  # cut short
    flags = ["--init", str(folder), "--data", str(folder / "p.jsonl"), "--out", str(tmp_path / "run"), "--device",
             "cpu", "--dry-run"]
    for extra in (["--init", str(broken)], ["--ref", str(broken)], ["--critic-init", str(broken)]):
        err = one_line_error(train_rl.main, flags + extra, capsys)
        assert f"{broken / 'model.safetensors'}: tensor 'model.norm.weight' is truncated" in err, err


def test_shards_a_missing_index_and_a_stale_duplicate(folder, tmp_path):
    path = copy(folder, tmp_path)
    files = shard(path)
    ref = GPT.from_pretrained(str(folder)).state_dict()
    assert all(torch.equal(ref[k], v) for k, v in GPT.from_pretrained(str(path)).state_dict().items())
    first, second = files
    # A stale copy of a tensor in another shard won silently (the later file's), whatever the index said.
    stale = load_file(path / second)
    name = files[first][0]
    stale[name] = torch.randn_like(load_file(path / first)[name])
    save_file(stale, path / second)
    assert f"tensor {name!r} is in both {path / first} and {path / second}" in refusal(path)
    (path / "model.safetensors.index.json").unlink()  # `cp *.safetensors` leaves the index behind
    assert "2 shards such as model-00001-of-00002.safetensors are here, but not model.safetensors.index.json" in \
        refusal(path)


def test_an_unfinished_download_and_pickles_are_named(folder, tmp_path):
    path = copy(folder, tmp_path)
    weights = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1)}, path / "model.pth")
    assert "only pickled weights found: model.pth; this code reads safetensors only and never unpickles" in \
        refusal(path)
    partial = path / ".cache" / "huggingface" / "download"
    partial.mkdir(parents=True)
    (partial / "x.incomplete").write_bytes(weights[:1000])
    assert "*.incomplete files: a download that did not finish" in refusal(path)
    cache = tmp_path / "models--org--tiny"  # the Hugging Face cache folder, not its snapshot
    (cache / "snapshots" / "abc").mkdir(parents=True)
    assert f"is a Hugging Face cache folder, not a model: give its snapshot, {cache / 'snapshots' / 'abc'}" in \
        refusal(cache)


@pytest.mark.parametrize("layers", [1, 3, 10**9])
def test_a_layer_count_that_is_not_the_weights_is_refused_at_once(folder, tmp_path, layers):
    # 10**9 layers built a meta model until memory ran out (3 GB and growing after 60 s).
    path = copy(folder, tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": layers}))
    t0 = time.perf_counter()
    assert f"config.json describes {layers} layers, but the weights hold 2 (numbered 0 to 1)" in refusal(path)
    assert time.perf_counter() - t0 < 5


def test_an_impossible_size_is_a_one_line_error(folder, tmp_path):
    path = copy(folder, tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "hidden_size": 2**31, "intermediate_size": 2**31}))
    assert "config.json describes a model too large to build" in refusal(path)  # was a RuntimeError traceback


def test_a_tied_config_with_a_different_head_is_refused(folder, tmp_path):
    # tie_word_embeddings true beside a trained lm_head: the head was dropped silently (transformers 5 keeps it).
    path = copy(folder, tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    with pytest.raises(CheckpointError, match="sets tie_word_embeddings, but the weights hold an lm_head.weight"):
        GPT.from_pretrained(str(path))
    state = load_file(path / "model.safetensors")
    state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()  # a head equal to the embeddings is fine
    save_file(state, path / "model.safetensors")
    GPT.from_pretrained(str(path))


def test_a_tokenizer_whose_eos_is_not_the_models_gets_a_note(folder, tmp_path, capsys):
    # A tokenizer of another model with fewer ids than the embedding table loaded without a word.
    path = copy(folder, tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "eos_token_id": 7}))
    Tokenizer.load(str(path))
    assert "config.json's eos_token_id [7] is none of the tokenizer's EOS ids [256]" in capsys.readouterr().err
    (path / "config.json").write_text(json.dumps({**config, "eos_token_id": 256}))
    Tokenizer.load(str(path))
    assert capsys.readouterr().err == ""
