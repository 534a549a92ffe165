"""One tokenizer class on top of tiktoken, for the toy task and for real Hugging Face models.

Two ways to build one:
  * `Tokenizer.byte_level()`: the toy task's tokenizer. 256 byte tokens (id = byte value) plus
    "<|endoftext|>" = 256 (eos) and "<|pad|>" = 257 (pad). No merges, so any string round-trips.
  * `Tokenizer.from_hf(folder)`: converts a byte-level BPE `tokenizer.json` (GPT-2, Qwen2, Qwen2.5,
    DeepSeek-R1-Distill-Qwen) into a `tiktoken.Encoding`, so the runtime never imports `tokenizers`
    or `transformers`; the tests check the ids against both.

Why the conversion is exact: tiktoken merges the adjacent pair whose *concatenation* has the lowest
rank, HF merges the pair that comes first in `merges`. The two agree when merge i produces the token
with the i-th smallest id, which `mergeable_ranks` checks instead of assuming.

What `encode` does, like HF `tokenizer.encode(text, add_special_tokens=False)`:
  1. split the text on added tokens (special or not, leftmost-longest match), which map to their ids;
  2. NFC-normalise the other pieces (Qwen2's normalizer; GPT-2 has none);
  3. tiktoken's regex pre-tokenisation + BPE on each piece.
It never adds BOS (HF's post_processor might): prompts get BOS from the chat template's `bos_token`.

eos_ids: the ids that end a response. eos_id (tokenizer_config's eos_token) first, then any other id that
generation_config.json's eos_token_id lists, as transformers' generate stops on each: Qwen2.5-Instruct
ends its turns with <|im_end|> but lists <|endoftext|> too.

pad_id is never one of eos_ids: a pad equal to an EOS id makes `tokens != pad_id` masks hide that token
from the RL loss, so the policy never learns to stop.
"""

import contextlib
import json
import re
import sys
import unicodedata
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import jinja2
import jinja2.ext
import tiktoken
from jinja2.sandbox import ImmutableSandboxedEnvironment

from common import InputError, Parser, cli, read_json, write_text
from distributed import is_main

# GPT-2's split regex (tiktoken's r50k spelling of HF ByteLevel(use_regex=True)).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
BYTES_FILE = "tokenizer_bytes.json"
# Kept verbatim in checkpoints; generation_config.json is the model's, read here for the ids that end a response.
HF_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
# The named special tokens transformers passes to chat templates (its `special_tokens_map`).
TEMPLATE_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters, used to spell tokens in tokenizer.json."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in mapping:
            mapping[b], extra = chr(256 + extra), extra + 1
    return mapping


@lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_unicode().items()}


def token_bytes(token: str) -> bytes:
    """Bytes of a tokenizer.json vocab entry such as 'Ġthe' -> b' the'."""
    decoder = unicode_to_byte()
    try:
        return bytes(decoder[c] for c in token)
    except KeyError:
        raise InputError(f"vocab token {token!r} is not spelled with the byte-level alphabet") from None


def token_content(token) -> str | None:
    """tokenizer_config.json writes tokens either as a string or as {"content": ...}."""
    return token.get("content") if isinstance(token, dict) else token


@contextlib.contextmanager
def reading(path: Path):
    """A file of the wrong shape (a field missing, a list where an object belongs) breaks the code reading it
    with a KeyError, TypeError, ...: that becomes one InputError naming the file and what is wrong."""
    try:
        yield
    except InputError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"{path}: malformed ({f'no field {e}' if isinstance(e, KeyError) else e})") from None


def check_normalizer(normalizer: dict | None) -> bool:
    """Returns whether to apply NFC. Only None and NFC (alone or in a Sequence) are supported."""
    if normalizer is None:
        return False
    parts = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    kinds = [p.get("type") for p in parts]
    if any(k != "NFC" for k in kinds):
        raise InputError(f"unsupported normalizer {kinds} (only None or NFC)")
    return bool(kinds)


def check_byte_level(step: dict, use_regex: bool) -> None:
    if step.get("type") != "ByteLevel" or step.get("use_regex", True) != use_regex:
        raise InputError(f"unsupported pre-tokenizer step {step} (expected ByteLevel(use_regex={use_regex}))")
    if step.get("add_prefix_space", False):
        raise InputError("unsupported pre-tokenizer: ByteLevel(add_prefix_space=True)")


def split_pattern(pre: dict | None) -> str:
    """The regex that cuts text into pieces before BPE, from tokenizer.json's pre_tokenizer.

    ByteLevel(use_regex=True) is GPT-2's regex; Qwen2 writes its own as
    Sequence[Split(Regex, Isolated), ByteLevel(use_regex=False)].
    """
    kind = (pre or {}).get("type")
    if kind == "ByteLevel":
        check_byte_level(pre, use_regex=True)
        return GPT2_PATTERN
    steps = pre.get("pretokenizers", []) if kind == "Sequence" else []
    if len(steps) == 2 and steps[0].get("type") == "Split":
        split, pattern = steps[0], steps[0].get("pattern", {})
        if "Regex" not in pattern or split.get("behavior") != "Isolated" or split.get("invert", False):
            raise InputError(f"unsupported Split pre-tokenizer {split} (expected a Regex, Isolated, not inverted)")
        check_byte_level(steps[1], use_regex=False)
        return pattern["Regex"]
    raise InputError(f"unsupported pre-tokenizer {kind!r}: expected ByteLevel or Sequence[Split, ByteLevel]")


def check_bpe_model(model: dict) -> None:
    if model.get("type") != "BPE":
        raise InputError(f"unsupported tokenizer model type {model.get('type')!r}: "
                         "only byte-level BPE converts to tiktoken")
    if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise InputError("unsupported BPE options: dropout / continuing_subword_prefix / end_of_word_suffix")
    if model.get("byte_fallback"):
        raise InputError("unsupported BPE option byte_fallback (that is a SentencePiece-style tokenizer)")


def mergeable_ranks(model: dict, added_ids: set[int]) -> dict[bytes, int]:
    """tiktoken's {token bytes: id} for the regular vocab, after checking that merging by id equals
    merging by HF's merge order: every merge (a, b) makes a token with a larger id than a and b, and
    merge i+1 makes a larger id than merge i. Errors rather than produce different tokens than HF."""
    if not isinstance(model.get("vocab"), dict) or not all(type(i) is int for i in model["vocab"].values()):
        raise TypeError(f"model.vocab must be an object {{token: integer id}}, got {model.get('vocab')!r:.60}")
    # Added tokens that are also in the vocab (GPT-2's <|endoftext|>) are handled as special tokens.
    vocab = {token: rank for token, rank in model["vocab"].items() if rank not in added_ids}
    ranks = {token_bytes(token): rank for token, rank in vocab.items()}
    if len(ranks) != len(vocab) or len(set(vocab.values())) != len(vocab):
        raise InputError("the vocab spells two tokens with the same bytes or gives two tokens the same id")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise InputError(f"vocab lacks {len(missing)} of the 256 single bytes (e.g. {missing[0]}), so not byte-level")
    last = -1
    for i, merge in enumerate(model.get("merges", [])):
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise TypeError(f"model.merges[{i}] must be \"a b\" or [\"a\", \"b\"], got {merge!r:.60}")
        a, b = pair
        ra, rb, rab = vocab.get(a), vocab.get(b), vocab.get(a + b)
        if ra is None or rb is None or rab is None:
            raise InputError(f"merge {i} ({a!r}, {b!r}) refers to tokens missing from the vocab")
        if not (rab > max(ra, rb) and rab > last):
            raise InputError(f"merge {i} ({a!r}, {b!r}) -> id {rab} breaks the id order that tiktoken needs")
        last = rab
    n_merges, n_multi = len(model.get("merges", [])), len(ranks) - 256
    if n_merges != n_multi:
        raise InputError(f"{n_multi} multi-byte vocab tokens but {n_merges} merges: some tokens are not made by merges")
    return ranks


def added_tokens(tok: dict) -> dict[str, dict]:
    """tokenizer.json's added_tokens by content. Their strip flags would change matching; refuse them."""
    tokens = tok.get("added_tokens", [])
    bad = [t for t in tokens if not (isinstance(t, dict) and isinstance(t.get("content"), str)
                                     and type(t.get("id")) is int)] if isinstance(tokens, list) else [tokens]
    if bad:
        raise TypeError(f"added_tokens must be a list of {{\"content\": string, \"id\": integer, ...}}, "
                        f"got {bad[0]!r:.60}")
    added = {t["content"]: t for t in tokens}
    for content, t in added.items():
        if t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
            raise InputError(f"added token {content!r} uses lstrip/rstrip/single_word, which is not supported")
    return added


_NOTED = set()  # (folder, what) of the notes said (noted)


def noted(folder: Path, what: str = "tokenizer_config.json") -> bool:
    """True the first time a folder is named for a note on `what`, on process 0 alone: a note is said once."""
    key = (folder.resolve(), what)
    first = key not in _NOTED and is_main()
    _NOTED.add(key)
    return first


def chat_template_of(config: dict, folder: Path) -> str | None:
    """The jinja chat template: chat_template.jinja if present (newer transformers), else the config's
    chat_template, a string or a list of {name, template} of which we take "default". Compiled here, so that
    a syntax error is refused when the tokenizer loads, not at the first prompt."""
    source = folder / "chat_template.jinja"
    if source.is_file():
        template = source.read_text(encoding="utf-8")
    else:
        source, template = folder / "tokenizer_config.json", config.get("chat_template")
        if isinstance(template, list):  # named templates: "default" is the chat one, as transformers takes it
            named = {t["name"]: t["template"] for t in template}
            if "default" not in named:
                raise InputError(f"{source}: chat_template holds the templates {sorted(named)} and none named "
                                 "'default'; name the chat one 'default'")
            template = named["default"]
        if not isinstance(template, (str, type(None))):
            raise TypeError(f"chat_template must be a string or a list of {{name, template}}, got {template!r:.60}")
    try:
        if template is not None:
            compile_template(template)
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"{source}: the chat template has a syntax error at line {e.lineno}: {e.message}") from None
    return template


@lru_cache(maxsize=8)
def compile_template(source: str):
    """Compiles a chat template in the same jinja environment transformers uses, so renders match."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


class Tokenizer:
    """tiktoken encoding + the ids and chat template the RL code needs. Build with `byte_level`,
    `from_hf` or `load`; the constructor just stores what they worked out."""

    def __init__(self, enc: tiktoken.Encoding, *, eos_id: int, pad_id: int, bos_id: int | None = None,
                 more_eos_ids: tuple[int, ...] = (), special_ids: set[int] = frozenset(), nfc: bool = False,
                 chat_template: str | None = None, template_tokens: dict[str, str] | None = None,
                 files: dict[str, str] | None = None):
        self.eos_ids = tuple(dict.fromkeys([eos_id, *more_eos_ids]))  # eos_id first, no repeats
        if pad_id in self.eos_ids:
            raise InputError(f"pad_id {pad_id} is an EOS id ({self.eos_ids}): that would hide EOS from the loss")
        self.enc, self.eos_id, self.pad_id, self.bos_id = enc, eos_id, pad_id, bos_id
        self.vocab_size = enc.n_vocab
        self.special_ids = set(special_ids)  # dropped by decode(skip_special=True)
        self.chat_template = chat_template
        self._nfc = nfc
        self._template_tokens = template_tokens or {}
        self._files = files  # HF source files, written back verbatim by save()
        self.byte_level_toy = files is None  # tasks.prompt_text gives the toy its own prompt format
        # Longest first, so the regex alternation is leftmost-longest like HF's added-token matcher.
        self._added = {s: enc.encode_single_token(s) for s in enc.special_tokens_set}
        added = sorted(self._added, key=len, reverse=True)
        self._added_re = re.compile("|".join(map(re.escape, added))) if added else None

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, with added tokens written in the text recognised; never adds BOS."""
        ids, start = [], 0
        for m in self._added_re.finditer(text) if self._added_re else ():
            ids += self._encode_plain(text[start:m.start()])
            ids.append(self._added[m.group()])
            start = m.end()
        return ids + self._encode_plain(text[start:])

    def _encode_plain(self, text: str) -> list[int]:
        if self._nfc:
            text = unicodedata.normalize("NFC", text)
        return self.enc.encode_ordinary(text) if text else []

    def decode(self, ids, skip_special: bool = False) -> str:
        """Text of `ids` (a list, numpy array or tensor). Bytes that are not valid UTF-8 (a token
        sequence cut inside a character) become U+FFFD, as in HF; so does an id outside the vocabulary
        (a model can sample the padding rows of its embedding table). `skip_special` drops the tokens
        marked special; non-special added tokens such as R1's <think> stay, as in HF."""
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        if skip_special:
            ids = [i for i in ids if i not in self.special_ids]
        try:
            data = self.enc.decode_bytes(ids)
        except KeyError:  # ids the vocabulary lacks: models pad their embedding table past the tokenizer
            data = b"".join(self._token_bytes(i) for i in ids)
        return data.decode("utf-8", errors="replace")

    def _token_bytes(self, i: int) -> bytes:
        try:
            return self.enc.decode_single_token_bytes(i)
        except KeyError:
            return "\ufffd".encode()

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Renders the model's chat template like transformers' apply_chat_template(tokenize=False)."""
        if self.chat_template is None:
            raise InputError("this tokenizer has no chat template "
                             "(the byte-level toy has none: format prompts directly)")
        try:
            return compile_template(self.chat_template).render(
                messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt,
                **self._template_tokens)
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as e:
            # ArithmeticError: {{ 1 // 0 }}, or the sandbox's range() past 100000 (an OverflowError)
            raise InputError(f"the model's chat template (chat_template.jinja or tokenizer_config.json) fails on a "
                             f"user message: {type(e).__name__}: {e}; fix the template") from None

    @classmethod
    def byte_level(cls) -> "Tokenizer":
        """The toy tokenizer: token id = byte value, no merges, eos 256, pad 257."""
        specials = {"<|endoftext|>": 256, "<|pad|>": 257}
        enc = tiktoken.Encoding("bytes", pat_str=r"[\s\S]", special_tokens=specials,
                                mergeable_ranks={bytes([b]): b for b in range(256)})
        return cls(enc, eos_id=256, pad_id=257, special_ids={256, 257})

    @classmethod
    def from_hf(cls, path) -> "Tokenizer":
        """Converts a Hugging Face folder (tokenizer.json + optional tokenizer_config.json)."""
        folder = Path(path)
        if not folder.is_dir():
            raise InputError(f"{folder}: no such tokenizer folder")
        tok = read_json(folder / "tokenizer.json", "tokenizer.json")
        has_config = (folder / "tokenizer_config.json").is_file()
        config = read_json(folder / "tokenizer_config.json") if has_config else {}
        generation = read_json(folder / "generation_config.json") if (folder / "generation_config.json").is_file() else {}
        files = {name: (folder / name).read_text(encoding="utf-8") for name in HF_FILES if (folder / name).is_file()}
        if not all(isinstance(x, dict) for x in (tok, config, generation)):
            raise InputError(f"{folder}: tokenizer.json, tokenizer_config.json and generation_config.json must each "
                             "hold a JSON object")
        with reading(folder / "tokenizer.json"):
            for key in ("model", "normalizer", "pre_tokenizer", "decoder"):
                if not isinstance(tok.get(key), (dict, type(None))):
                    raise TypeError(f"{key} must be an object, got {tok[key]!r:.60}")
            check_bpe_model(tok.get("model") or {})
            nfc = check_normalizer(tok.get("normalizer"))
            pattern = split_pattern(tok.get("pre_tokenizer"))
            if (tok.get("decoder") or {}).get("type") != "ByteLevel":
                raise InputError(f"unsupported decoder {tok.get('decoder')} (expected ByteLevel)")
            added = added_tokens(tok)
            ranks = mergeable_ranks(tok["model"], {t["id"] for t in added.values()})
        try:
            enc = tiktoken.Encoding(f"hf:{folder.name}", pat_str=pattern, mergeable_ranks=ranks,
                                    special_tokens={c: t["id"] for c, t in added.items()})
        except ValueError as e:
            raise InputError(f"{folder}: tiktoken rejects the pre-tokenizer regex {pattern!r}: {e}") from e

        def token_id(name: str) -> int | None:
            content = token_content(config.get(name))
            if content is None:
                return None
            if content in added:
                return added[content]["id"]
            if content.encode() in ranks:
                return ranks[content.encode()]
            raise InputError(f"{folder}: tokenizer_config {name} {content!r} is not a token of tokenizer.json")

        with reading(folder / "tokenizer_config.json"):
            for name in TEMPLATE_TOKEN_NAMES:
                if not isinstance(token_content(config.get(name)), (str, type(None))):
                    raise TypeError(f"{name} must be a string or {{\"content\": string}}, got {config[name]!r:.60}")
            eos_id, pad_id, bos_id = (token_id(name) for name in ("eos_token", "pad_token", "bos_token"))
            templ = {n: token_content(config[n]) for n in TEMPLATE_TOKEN_NAMES if token_content(config.get(n))}
            chat_template = chat_template_of(config, folder)
        if eos_id is None:
            if "<|endoftext|>" not in added:
                raise InputError(f"{folder}: no eos_token in tokenizer_config.json and no <|endoftext|> token")
            eos_id = added["<|endoftext|>"]["id"]
        if not has_config and noted(folder):  # not refused: GPT-2-style folders
            plain = "no chat template (prompts are plain \"Q: ...\" text), " if chat_template is None else ""
            print(f"note: {folder} has no tokenizer_config.json: {plain}no BOS, and <|endoftext|> is the EOS token. "
                  "A chat or reasoning model such as R1-Distill needs that file from its folder.", file=sys.stderr)
        more_eos = generation_eos_ids(generation, enc.n_vocab, folder)
        eos_ids = (eos_id, *more_eos)
        return cls(enc, eos_id=eos_id, pad_id=choose_pad_id(pad_id, added, eos_ids, folder), bos_id=bos_id,
                   more_eos_ids=more_eos, special_ids={t["id"] for t in added.values() if t.get("special")}, nfc=nfc,
                   chat_template=chat_template, template_tokens=templ, files=files)

    def save(self, dir) -> None:
        """HF-derived: the source files verbatim; byte-level: tokenizer_bytes.json."""
        folder = Path(dir)
        folder.mkdir(parents=True, exist_ok=True)
        if self._files is None:
            record = {"kind": "bytes", "eos_id": self.eos_id, "pad_id": self.pad_id}
            write_text(folder / BYTES_FILE, json.dumps(record))
        for name, text in (self._files or {}).items():
            write_text(folder / name, text)

    @classmethod
    def load(cls, dir) -> "Tokenizer":
        """The tokenizer of a model folder. Every id must have a row in the embedding table of the model there
        (config.json's vocab_size, ours and Hugging Face's alike): an id past it would fail deep in a forward."""
        tok = cls._load(Path(dir))
        config = read_json(Path(dir) / "config.json") if (Path(dir) / "config.json").is_file() else {}
        rows = config.get("vocab_size") if isinstance(config, dict) else None
        if type(rows) is int and tok.vocab_size > rows:
            raise InputError(f"{dir}: the tokenizer's ids go up to {tok.vocab_size - 1}, past the model's vocab_size "
                             f"of {rows} (config.json); give the tokenizer files that belong to this model")
        ids = config.get("eos_token_id") if isinstance(config, dict) else None
        ids = [ids] if type(ids) is int else [i for i in ids if type(i) is int] if isinstance(ids, list) else []
        if ids and not set(ids) & set(tok.eos_ids) and noted(Path(dir), "eos_token_id"):  # a note: a config.json
            # may name a stale id
            print(f"note: {dir}: config.json's eos_token_id {ids} is none of the tokenizer's EOS ids "
                  f"{list(tok.eos_ids)}: are tokenizer.json and tokenizer_config.json from another model? Responses "
                  "of a mismatched tokenizer are garbage; give this model's own tokenizer files", file=sys.stderr)
        return tok

    @classmethod
    def _load(cls, folder: Path) -> "Tokenizer":
        if (folder / "tokenizer.json").is_file():
            return cls.from_hf(folder)
        if (folder / BYTES_FILE).is_file():
            record = read_json(folder / BYTES_FILE)
            kind = record.get("kind") if isinstance(record, dict) else None
            if kind != "bytes":
                raise InputError(f"{folder / BYTES_FILE}: unknown tokenizer kind {kind!r} (expected 'bytes')")
            return cls.byte_level()
        raise InputError(f"{folder}: expected tokenizer.json (Hugging Face) or {BYTES_FILE} (byte-level)")


def generation_eos_ids(generation: dict, vocab_size: int, folder: Path) -> tuple[int, ...]:
    """The ids generation_config.json's eos_token_id names: one id, a list of them, or none."""
    ids = generation.get("eos_token_id")
    ids = [] if ids is None else [ids] if isinstance(ids, int) else ids
    if not isinstance(ids, list) or not all(type(i) is int and 0 <= i < vocab_size for i in ids):
        raise InputError(f"{folder / 'generation_config.json'}: eos_token_id must be a token id or a list of them "
                         f"(below the tokenizer's {vocab_size}), got {generation['eos_token_id']!r:.60}; fix or "
                         "remove it")
    return tuple(ids)


def choose_pad_id(config_pad: int | None, added: dict[str, dict], eos_ids: tuple[int, ...], folder: Path) -> int:
    """A pad id that is not an EOS id: the config's pad_token, else <|endoftext|>, else an added token with
    "pad" in its name, else any other added token. Pad positions are masked, so only that matters
    (R1-Distill-Qwen's config sets pad = eos = <｜end▁of▁sentence｜> and it has no <|endoftext|>, so we
    take <|vision_pad|>; Qwen2.5-Instruct's pad <|endoftext|> is in generation_config's EOS list)."""
    def preference(t):
        return t["content"] != "<|endoftext|>", "pad" not in t["content"].lower(), t["id"]
    by_preference = sorted(added.values(), key=preference)
    for candidate in [config_pad, *(t["id"] for t in by_preference)]:
        if candidate is not None and candidate not in eos_ids:
            return candidate
    raise InputError(f"{folder}: no token other than EOS ({', '.join(map(str, eos_ids))}) to use as pad; add a pad "
                     "token to tokenizer.json (and a row to the model's embeddings), since a pad equal to EOS would "
                     "hide EOS from the loss")


@cli
def main(argv=None):
    parser = Parser(description="Encode text with a tokenizer and show the ids.")
    parser.add_argument("--path", default=None,
                        help="folder with tokenizer.json or tokenizer_bytes.json (default: the byte-level toy)")
    parser.add_argument("--text", default="What is 1/2 + 1/3? \\boxed{5/6}", help="text to encode")
    args = parser.parse_args(argv)
    tok = Tokenizer.load(args.path) if args.path else Tokenizer.byte_level()
    ids = tok.encode(args.text)
    print(f"vocab_size={tok.vocab_size} eos={','.join(map(str, tok.eos_ids))} pad={tok.pad_id} bos={tok.bos_id}")
    print(f"{len(ids)} ids: {ids}")
    print(f"decoded: {tok.decode(ids)!r}")


if __name__ == "__main__":
    main()
