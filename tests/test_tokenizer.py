"""Tokenizer tests. The oracles are the `tokenizers` and `transformers` libraries (test-only): we train
small byte-level BPE tokenizers here, in GPT-2 and Qwen2 flavours, and require identical ids and text."""

import json
import random
import re
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from common import InputError
from tokenizer import Tokenizer

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
R1_SPECIALS = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"]
QWEN_SPECIALS = ["<|im_start|>", "<|im_end|>", *R1_SPECIALS]
# Non-special added tokens; "<answer>" and "<answer>\n" overlap to pin leftmost-longest matching.
QWEN_ADDED = ["<think>", "</think>", "<answer>", "<answer>\n"]

# A simplified DeepSeek-R1-Distill template: system prompt first, thoughts stripped from past answers. It renders
# what R1's does (one line, no tool turns): `{{-` keeps the indentation before each turn out of the prompt.
R1_TEMPLATE = """{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}
{% set ns = namespace(system_prompt='') %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{% endif %}
{%- endfor %}
{{ bos_token }}{{ ns.system_prompt }}
{%- for message in messages %}
    {%- if message['role'] == 'user' %}
        {{- '<｜User｜>' + message['content'] }}
    {%- elif message['role'] == 'assistant' %}
        {% set content = message['content'] %}
        {% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}
        {{- '<｜Assistant｜>' + content + eos_token }}
    {%- elif message['role'] != 'system' %}
        {{ raise_exception('unknown role ' + message['role']) }}
    {%- endif %}
{%- endfor %}
{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"""

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's what they'd've WANTED, isn't it? I'LL see.",
    "Compute 12345678901234567890 + 3.14159 = ?  Answer: 42; 1,000,000 and 0.0001.",
    r"We have \frac{1}{2} + \frac{1}{3} = \frac{5}{6}, so the answer is \boxed{42}. $x^2 + y_1 \le \sqrt{z}$",
    "数学很有趣。答案是四十二。東京は日本の首都です。한국어 문장입니다.",
    "Emoji: 🙂🚀👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵, math 𝔸𝕓 ∑∫≈≠.",
    "Combining: e\u0301 a\u0308 o\u0302 \u212b \u1100\u1161 cafe\u0301 vs café; n\u0303.",
    "spaces:    many   spaces\n\n\nnewlines\r\n\r\ncrlf\ttab\t\ttabs \t mixed  \n  \n",
    "nbsp\u00a0here\u3000ideographic\u2009thin  trailing   ",
    "def f(x):\n    return x ** 2  # comment\n\n\tindented()\n",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nIt is 4.\n</think>\nThe answer is 4.",
    "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\nhmm</think> ok<｜end▁of▁sentence｜>",
    "glued<think>x</think>y<answer>\n5<answer>6 <|endoftext|><|endoftext|> end",
    "", " ", "\n", "a", "'s 'S 'll", "ÿþ\x00\x01\x7f control chars",
]


def training_corpus() -> list[str]:
    """A few thousand lines of prose, maths, numbers, code, CJK and emoji: enough for ~800 merges."""
    rng = random.Random(0)
    words = ("the answer is we have so let compute then therefore number sum product prime "
             "divisor triangle angle probability equation solution because").split()
    lines = []
    for i in range(3000):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        lines.append(f"{sentence.capitalize()} {rng.randint(0, 10**rng.randint(1, 9))}.")
        lines.append(rf"\frac{{{i % 97}}}{{{i % 13 + 1}}} \boxed{{{i}}} $x^{i % 5}$ ")
    lines += ["数学很有趣。答案是四十二。", "東京は日本の首都です。", "🙂🚀 emoji 🙂", "café naïve", "  code()\n\t"] * 50
    return lines


def train(flavour: str) -> HFTokenizer:
    tok = HFTokenizer(models.BPE())
    if flavour == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|pad|>"] if flavour == "gpt2" else ["<|endoftext|>"]
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(), trainer)
    if flavour == "qwen2":  # added after training, at the end of the id range, like Qwen2's
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIALS])
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN_ADDED])
    return tok


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{flavour: folder}; the Qwen2 folder also has an R1-Distill tokenizer_config.json."""
    out = {}
    for flavour in ("gpt2", "qwen2"):
        folder = tmp_path_factory.mktemp(flavour)
        train(flavour).save(str(folder / "tokenizer.json"))
        out[flavour] = folder
    config = {"bos_token": {"__type": "AddedToken", "content": R1_SPECIALS[0]}, "eos_token": R1_SPECIALS[1],
              "pad_token": R1_SPECIALS[1], "chat_template": R1_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast"}
    (out["qwen2"] / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


def random_texts(n: int) -> list[str]:
    """Random mixtures of the characters that tokenizers disagree on, if they disagree at all."""
    pool = list("aZé 1234567890 \n\n\t\r.,'!?$\\{}^_") + list("数学答案🙂🚀\u0301\u0308\u00a0\u3000")
    pool += ["'s", "'LL", "  "]
    pool += QWEN_SPECIALS[:2] + QWEN_ADDED + ["<|endoftext|>", "the ", "answer", "\\frac{1}{2}"]
    rng = random.Random(1)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(n)]


@pytest.mark.parametrize("flavour", ["gpt2", "qwen2"])
def test_encode_decode_match_tokenizers(folders, flavour):
    hf = HFTokenizer.from_file(str(folders[flavour] / "tokenizer.json"))
    tok = Tokenizer.from_hf(folders[flavour])
    assert tok.vocab_size == hf.get_vocab_size(with_added_tokens=True)
    for text in TEXTS + training_corpus()[:200] + random_texts(300):
        ids = tok.encode(text)
        assert ids == hf.encode(text, add_special_tokens=False).ids, text
        assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=False), text
        assert tok.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True), text


@pytest.mark.parametrize("flavour", ["gpt2", "qwen2"])
def test_decode_of_cut_characters_matches_tokenizers(folders, flavour):
    """Prefixes of ids cut inside multi-byte characters decode to U+FFFD exactly like HF."""
    hf = HFTokenizer.from_file(str(folders[flavour] / "tokenizer.json"))
    tok = Tokenizer.from_hf(folders[flavour])
    ids = tok.encode("数学🙂👩‍👧é\u0301 x")
    assert any("\ufffd" in tok.decode(ids[:n]) for n in range(len(ids)))
    for n in range(len(ids) + 1):
        assert tok.decode(ids[:n]) == hf.decode(ids[:n], skip_special_tokens=False)
    assert tok.decode(ids[1:]) == hf.decode(ids[1:], skip_special_tokens=False)


def test_nfc_is_applied(folders):
    tok = Tokenizer.from_hf(folders["qwen2"])
    assert tok.encode("cafe\u0301") == tok.encode("café")
    assert tok.decode(tok.encode("cafe\u0301")) == "café"


def test_old_string_merges_format(folders, tmp_path):
    """Older tokenizer.json files write merges as "a b" strings instead of [a, b] pairs."""
    data = json.loads((folders["qwen2"] / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    old, new = Tokenizer.from_hf(tmp_path), Tokenizer.from_hf(folders["qwen2"])
    for text in TEXTS:
        assert old.encode(text) == new.encode(text)


def test_matches_transformers(folders):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer.from_hf(folders["qwen2"])
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folders["qwen2"] / "tokenizer.json"))
    for text in TEXTS:
        assert tok.encode(text) == fast.encode(text, add_special_tokens=False), text
        ids = tok.encode(text)
        assert tok.decode(ids) == fast.decode(ids, clean_up_tokenization_spaces=False), text

    auto = AutoTokenizer.from_pretrained(str(folders["qwen2"]))
    assert (tok.bos_id, tok.eos_id) == (auto.bos_token_id, auto.eos_token_id)
    chats = [
        [{"role": "user", "content": "What is 1/2 + 1/3?"}],
        [{"role": "system", "content": "Be concise."}, {"role": "user", "content": "2+2?"},
         {"role": "assistant", "content": "<think>\nsum</think>4"}, {"role": "user", "content": "And 3+3?"}],
    ]
    for chat in chats:
        for gen in (True, False):
            expected = auto.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
            assert tok.apply_chat_template(chat, add_generation_prompt=gen) == expected
    bos, eos, user, assistant = R1_SPECIALS
    assert tok.apply_chat_template(chats[0]) == f"{bos}{user}What is 1/2 + 1/3?{assistant}<think>\n"  # R1's prompt
    assert tok.apply_chat_template(chats[1], add_generation_prompt=False) == \
        f"{bos}Be concise.{user}2+2?{assistant}4{eos}{user}And 3+3?"
    prompt = tok.apply_chat_template(chats[0])
    assert tok.encode(prompt) == auto.encode(prompt, add_special_tokens=False)
    with pytest.raises(Exception, match="unknown role tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}])


def test_special_ids_from_config(folders):
    tok = Tokenizer.from_hf(folders["qwen2"])
    data = json.loads((folders["qwen2"] / "tokenizer.json").read_text(encoding="utf-8"))
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    assert tok.eos_id == added[R1_SPECIALS[1]] and tok.bos_id == added[R1_SPECIALS[0]]
    # The config says pad = eos (as R1-Distill does): we must pick another token.
    assert tok.pad_id == added["<|endoftext|>"] != tok.eos_id
    assert tok.encode("<think>") == [added["<think>"]]
    assert tok.decode([added["<think>"], tok.eos_id], skip_special=True) == "<think>"

    gpt2 = Tokenizer.from_hf(folders["gpt2"])  # no config: eos is <|endoftext|>, pad the other added token
    assert (gpt2.eos_id, gpt2.pad_id, gpt2.bos_id, gpt2.chat_template) == (0, 1, None, None)


def test_no_pad_candidate_is_an_error(tmp_path):
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["hello world"] * 10, trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="no token other than EOS"):
        Tokenizer.from_hf(tmp_path)


def qwen_instruct_folder(folders, tmp_path, eos_token_id):
    """A Qwen2.5-Instruct-style folder: eos <|im_end|>, pad <|endoftext|>, and generation_config.json's
    eos_token_id as given."""
    folder = tmp_path / "instruct"
    shutil.copytree(folders["qwen2"], folder)
    config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": R1_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": eos_token_id, "top_p": 0.8}))
    return folder


def test_generation_config_lists_more_eos_ids(folders, tmp_path):
    from transformers import GenerationConfig

    data = json.loads((folders["qwen2"] / "tokenizer.json").read_text(encoding="utf-8"))
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    im_end, endoftext = added["<|im_end|>"], added["<|endoftext|>"]
    folder = qwen_instruct_folder(folders, tmp_path, [im_end, endoftext])
    tok = Tokenizer.from_hf(folder)
    assert tok.eos_ids == (im_end, endoftext) == tuple(GenerationConfig.from_pretrained(folder).eos_token_id)
    assert tok.eos_id == im_end
    # The config's pad <|endoftext|> ends responses too: a pad must not be an EOS id, so another is taken.
    # No token has "pad" in its name here, so the added token of lowest id that is not an EOS id.
    assert tok.pad_id == added["<|im_start|>"] == min(set(added.values()) - {im_end, endoftext})
    tok.save(tmp_path / "saved")  # a checkpoint keeps the file, so a trained actor stops where its base did
    assert Tokenizer.load(tmp_path / "saved").eos_ids == (im_end, endoftext)

    one = Tokenizer.from_hf(qwen_instruct_folder(folders, tmp_path / "one", im_end))  # an int, not a list
    assert (one.eos_ids, one.pad_id) == ((im_end,), endoftext)
    assert Tokenizer.from_hf(folders["qwen2"]).eos_ids == (added[R1_SPECIALS[1]],)  # no generation_config.json


@pytest.mark.parametrize("bad", ["<|im_end|>", [1.5], [10**9], [-1], {"a": 1}])
def test_a_bad_generation_config_eos_is_refused_in_one_line(folders, tmp_path, bad):
    with pytest.raises(InputError, match=r"generation_config.json: eos_token_id must be a token id or a list"):
        Tokenizer.from_hf(qwen_instruct_folder(folders, tmp_path, bad))


def test_byte_level_basics():
    tok = Tokenizer.byte_level()
    assert (tok.eos_id, tok.pad_id, tok.bos_id, tok.vocab_size) == (256, 257, None, 258)
    assert tok.encode("<|endoftext|>") == [256] and tok.encode("<|pad|>") == [257]
    assert tok.encode("hé") == [104, 0xC3, 0xA9]
    assert tok.decode([104, 256, 257], skip_special=True) == "h"
    assert tok.decode([0xC3]) == "\ufffd"
    with pytest.raises(ValueError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_byte_level_round_trip(text):
    tok = Tokenizer.byte_level()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    if "<|" not in text:
        assert ids == list(text.encode("utf-8", "surrogatepass"))


def test_save_load_round_trip(folders, tmp_path):
    byte = Tokenizer.byte_level()
    byte.save(tmp_path / "bytes")
    assert json.loads((tmp_path / "bytes" / "tokenizer_bytes.json").read_text())["kind"] == "bytes"
    again = Tokenizer.load(tmp_path / "bytes")
    assert (again.eos_id, again.pad_id, again.encode("hi 🙂")) == (256, 257, byte.encode("hi 🙂"))

    hf = Tokenizer.from_hf(folders["qwen2"])
    hf.save(tmp_path / "hf")
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    again = Tokenizer.load(tmp_path / "hf")
    assert (again.eos_id, again.pad_id, again.bos_id) == (hf.eos_id, hf.pad_id, hf.bos_id)
    assert again.chat_template == R1_TEMPLATE
    for text in TEXTS:
        assert again.encode(text) == hf.encode(text)


def test_a_tokenizer_that_exactly_fills_the_embedding_table_loads(tmp_path):
    """The byte-level ids run 0..257: a model with 258 embedding rows holds every one (the toy's own models);
    one of 257 has no row for the pad id 257."""
    Tokenizer.byte_level().save(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 258}))
    assert Tokenizer.load(tmp_path).vocab_size == 258
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 257}))
    with pytest.raises(InputError, match=r"the tokenizer's ids go up to 257, past the model's vocab_size of 257"):
        Tokenizer.load(tmp_path)


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        Tokenizer.load(tmp_path / "nowhere")
    with pytest.raises(InputError, match="tokenizer.json"):
        Tokenizer.load(tmp_path)
    with pytest.raises(InputError, match="nowhere"):
        Tokenizer.from_hf(tmp_path / "nowhere")
    with pytest.raises(InputError, match="tokenizer.json"):
        Tokenizer.from_hf(tmp_path)


@pytest.mark.parametrize("model, name", [(models.WordPiece(vocab={"[UNK]": 0, "a": 1}, unk_token="[UNK]"), "WordPiece"),
                                         (models.Unigram([("a", -1.0), ("b", -2.0)]), "Unigram")])
def test_non_bpe_model_is_an_error(tmp_path, model, name):
    HFTokenizer(model).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match=name):
        Tokenizer.from_hf(tmp_path)


def test_merge_order_violation_is_an_error(folders, tmp_path):
    """Merges out of id order would make tiktoken tokenise differently from HF: refuse them."""
    data = json.loads((folders["gpt2"] / "tokenizer.json").read_text(encoding="utf-8"))
    merges = data["model"]["merges"]
    merges[10], merges[20] = merges[20], merges[10]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="id order"):
        Tokenizer.from_hf(tmp_path)


def test_unsupported_pre_tokenizer_is_an_error(folders, tmp_path):
    data = json.loads((folders["gpt2"] / "tokenizer.json").read_text(encoding="utf-8"))
    data["pre_tokenizer"] = {"type": "Whitespace"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="Whitespace"):
        Tokenizer.from_hf(tmp_path)


def test_chat_template_jinja_file(folders, tmp_path):
    """Newer transformers save the template as chat_template.jinja; it wins over the config's."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((folders["qwen2"] / name).read_bytes())
    (tmp_path / "chat_template.jinja").write_text("{{ bos_token }}{{ messages[0]['content'] }}", encoding="utf-8")
    tok = Tokenizer.from_hf(tmp_path)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}]) == R1_SPECIALS[0] + "hi"
    tok.save(tmp_path / "copy")
    assert Tokenizer.load(tmp_path / "copy").chat_template == tok.chat_template


def test_decode_of_ids_outside_the_vocabulary_is_a_replacement_char():
    tok = Tokenizer.byte_level()
    assert tok.decode([65, 475, 66]) == "A\ufffdB"  # a model with a padded embedding table can sample 475


def test_a_folder_without_tokenizer_config_is_told_what_it_lacks(folders, tmp_path, capsys, monkeypatch):
    """Such a folder loads (GPT-2-style folders can lack it), but an R1-Distill folder that lost the file was
    prompted without its template and stopped at the wrong EOS, silently, for a whole run."""
    Tokenizer.from_hf(folders["qwen2"])
    assert capsys.readouterr().err == ""
    shutil.copy(folders["qwen2"] / "tokenizer.json", tmp_path)
    tok = Tokenizer.from_hf(tmp_path)
    assert capsys.readouterr().err == (f"note: {tmp_path} has no tokenizer_config.json: no chat template (prompts "
                                       "are plain \"Q: ...\" text), no BOS, and <|endoftext|> is the EOS token. A "
                                       "chat or reasoning model such as R1-Distill needs that file from its folder.\n")
    assert tok.chat_template is None and tok.bos_id is None and tok.decode([tok.eos_id]) == "<|endoftext|>"
    Tokenizer.from_hf(tmp_path)  # said once a folder (eval.py loads each twice), on process 0 alone
    assert capsys.readouterr().err == ""
    for rank, says in [("1", False), ("0", True)]:
        folder = tmp_path / f"jinja{rank}"
        folder.mkdir()
        shutil.copy(folders["qwen2"] / "tokenizer.json", folder)
        (folder / "chat_template.jinja").write_text(R1_TEMPLATE, encoding="utf-8")
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets them
        Tokenizer.from_hf(folder)
        assert ("no tokenizer_config.json: no BOS, and <|endoftext|>" in capsys.readouterr().err) == says


def test_a_base_model_without_chat_template_still_gets_the_instruction(folders):
    """Without it a real model is never told to box its answer: nearly every reward is -1, and the phase-2
    selection finds nothing solved sometimes. Only the byte-level toy keeps the bare format."""
    from tasks import INSTRUCTION, prompt_text
    assert prompt_text("1+2", Tokenizer.from_hf(folders["gpt2"])) == f"Q: 1+2\n{INSTRUCTION}\nA: "
    assert prompt_text("1+2", Tokenizer.byte_level()) == "Q: 1+2\nA: "
    r1 = prompt_text("1+2", Tokenizer.from_hf(folders["qwen2"]))
    assert f"1+2\n{INSTRUCTION}" in r1 and r1.endswith("<｜Assistant｜><think>\n")


def test_chat_templates_refused_in_one_line(folders, tmp_path):
    shutil.copytree(folders["qwen2"], tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    for template, message in [
        ([{"name": "tool_use", "template": "{{ messages }}"}], "templates ['tool_use'] and none named 'default'"),
    ]:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
        with pytest.raises(InputError, match=re.escape(message)):
            Tokenizer.from_hf(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": [
        {"name": "default", "template": R1_TEMPLATE}, {"name": "rag", "template": "x"}]}))
    assert Tokenizer.from_hf(tmp_path).chat_template == R1_TEMPLATE
    for template, message in [  # errors at render time, not syntax errors (those are refused at load)
        ("{{ raise_exception('System role not supported') }}", "TemplateError: System role not supported"),
        ("{{ messages[0]['content'] + 1 }}", "TypeError: can only concatenate str"),
    ]:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
        with pytest.raises(InputError, match="the model's chat template .* fails on a user message: " + re.escape(message)):
            Tokenizer.from_hf(tmp_path).apply_chat_template([{"role": "user", "content": "hi"}])


def test_a_pad_is_chosen_by_name_before_by_id(tmp_path):
    """R1-Distill-Qwen's config says pad = eos and it has no <|endoftext|>: a token named pad is taken before
    one of lower id (Qwen2's <|vision_pad|> comes after <|im_start|>)."""
    from tokenizer import choose_pad_id
    added = {c: {"content": c, "id": i} for i, c in enumerate(["<|im_start|>", "<|end|>", "<|vision_pad|>"])}
    assert choose_pad_id(None, added, (1,), tmp_path) == 2
    assert choose_pad_id(None, {**added, "<|endoftext|>": {"content": "<|endoftext|>", "id": 3}}, (1,), tmp_path) == 3
    assert choose_pad_id(0, added, (1,), tmp_path) == 0  # the config's own pad, when it is not an EOS id
