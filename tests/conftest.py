import os
import sys

# Tests import the flat top-level modules (model, sample, ...) from the repository root.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(1, os.path.join(REPO, "tools"))  # the developer tools (bench, gpu_check) are tested too
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the transformers oracle must never reach the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json

import pytest
import torch


def train_tiny_policy(path, answers, steps=150):
    """A byte-level GPT trained for a few seconds to answer the toy prompt "Q: 1\\nA: " with
    "\\boxed{a}" for a drawn from `answers` (so with ["1", "2"] it is right about half the time)."""
    from model import GPT, GPTConfig
    from tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.byte_level()
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_embd=32, n_inner=64, max_seq_len=64))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    prompt = tok.encode("Q: 1\nA: ")
    seqs = [prompt + tok.encode(f"\\boxed{{{a}}}") + [tok.eos_id] for a in answers]
    x = torch.tensor([s[:-1] for s in seqs])
    y = torch.tensor([s[1:] for s in seqs])
    weight = torch.zeros_like(y, dtype=torch.float)
    weight[:, len(prompt) - 1 :] = 1
    for _ in range(steps):
        loss = (torch.nn.functional.cross_entropy(model(x).transpose(1, 2), y, reduction="none") * weight).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save(str(path))
    tok.save(str(path))
    with open(path / "problems.jsonl", "w") as f:
        f.write(json.dumps({"id": "q1", "problem": "1", "answer": "1", "level": 1}) + "\n")
    return path


@pytest.fixture(scope="session")
def half_right(tmp_path_factory):
    """Tiny policy that answers "1" or "2" about equally often; the gold answer is "1"."""
    return train_tiny_policy(tmp_path_factory.mktemp("tiny"), ["1", "2"])
