"""The paper's setting on a CPU, at toy size: a random Qwen2 Hugging Face folder with an R1-Distill-style
tokenizer and chat template (all made here), MATH-style JSONL, and the commands a GPU user types:
select_problems.py, train_rl.py --phase 2 --scale paper (bf16 autocast, a bf16 rollout copy,
gradient checkpointing, token-budget micro-batches), Ctrl-C, --resume, eval.py."""

import json
import os
import signal

import pytest

import eval as evaluation
import select_problems
import train_rl
from model import GPT
from test_model import hf_qwen2
from test_tokenizer import R1_SPECIALS, R1_TEMPLATE, train

MATH = [  # MATH's own format: level as "Level N", the gold answer only in the solution's last \boxed{}
    {"problem": f"What is ${a} + {b}$?", "solution": f"We add: ${a}+{b}=\\boxed{{{a + b}}}$.",
     "level": f"Level {lv}", "type": "Algebra", "unique_id": f"test/algebra/{a}{b}.json"}
    for a, b, lv in [(1, 2, 5), (3, 4, 5), (5, 6, 4), (7, 8, 3)]
]


@pytest.fixture(scope="module")
def r1_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("r1-tiny")
    tok = train("qwen2")
    tok.save(str(folder / "tokenizer.json"))
    config = {"bos_token": R1_SPECIALS[0], "eos_token": R1_SPECIALS[1], "pad_token": R1_SPECIALS[1],
              "chat_template": R1_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    hf_qwen2(folder, vocab_size=tok.get_vocab_size(with_added_tokens=True), max_position_embeddings=512)
    eos = tok.token_to_id(R1_SPECIALS[1])  # R1-Distill's generation_config.json, its ids in this vocabulary
    generation = {"bos_token_id": tok.token_to_id(R1_SPECIALS[0]), "eos_token_id": eos, "do_sample": True,
                  "temperature": 0.6, "top_p": 0.95}
    (folder / "generation_config.json").write_text(json.dumps(generation), encoding="utf-8")
    with open(folder / "math.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in MATH)
    return folder


@pytest.mark.slow
def test_phase2_commands_end_to_end(r1_folder, tmp_path, monkeypatch):
    math = str(r1_folder / "math.jsonl")
    chosen = tmp_path / "set.jsonl"
    # A random model never answers, so no pass rate is strictly inside (0, 1): allow 0 to get a set.
    select_problems.main(["--ckpt", str(r1_folder), "--data", math, "--levels", "4,5", "--candidates", "3",
                          "--samples", "2", "--num-problems", "2", "--min-pass-rate", "-1", "--max-new-tokens", "8",
                          "--out", str(chosen)])
    picked = [json.loads(line) for line in open(chosen)]
    assert len(picked) == 2 and all(r["level"] in (4, 5) and r["pass_rate"] == 0.0 for r in picked)

    out = tmp_path / "run"
    flags = ["--phase", "2", "--scale", "paper", "--init", str(r1_folder), "--data", str(chosen), "--steps", "2",
             "--prompts-per-step", "2", "--samples-per-prompt", "2", "--max-new-tokens", "8", "--device", "cpu",
             "--save-every", "10", "--eval-every", "0", "--out", str(out)]
    train_rl.main([*flags, "--dry-run", "--gpu-mem", "80"])  # prints the estimate, trains nothing
    assert not (out / "checkpoint").exists()

    real_collect = train_rl.collect

    def ctrl_c_during_first_step(cfg, *args):
        if args[-1] == 0:
            os.kill(os.getpid(), signal.SIGINT)  # handled by train_rl.StopRequest: finish the step, save
        return real_collect(cfg, *args)

    monkeypatch.setattr(train_rl, "collect", ctrl_c_during_first_step)
    with pytest.raises(SystemExit) as stopped:
        train_rl.main(flags)
    assert stopped.value.code == 130
    monkeypatch.setattr(train_rl, "collect", real_collect)
    saved = json.load(open(out / "checkpoint" / "state.json"))
    assert saved["step"] == 1
    cfg = saved["config"]
    assert (cfg["dtype"], cfg["grad_checkpointing"], cfg["micro_batch_tokens"], cfg["max_new_tokens"]) == ("bf16", True, 16384, 8)

    train_rl.main(["--resume", "--out", str(out)])
    log = [json.loads(line) for line in open(out / "log.jsonl")]
    assert [r["step"] for r in log] == [0, 1]
    actor = out / "checkpoint" / "actor"
    # The actor keeps its base's tokenizer files and generation_config.json, byte for byte.
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (actor / name).read_bytes() == (r1_folder / name).read_bytes()
    assert GPT.from_pretrained(str(actor)).config.vocab_size == GPT.from_pretrained(str(r1_folder)).config.vocab_size

    results = tmp_path / "eval.json"
    evaluation.main(["--ckpt", str(r1_folder), str(actor), "--names", "base", "phase2", "--data", math,
                     "--samples", "2", "--max-new-tokens", "8", "--out", str(results)])
    figures = json.load(open(results))["results"]
    for name in ("base", "phase2"):
        assert figures[name]["all"]["responses"] == 2 * len(MATH)
        assert set(figures[name]["levels"]) == {"3", "4", "5"}
