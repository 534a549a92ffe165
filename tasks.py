"""
Problems, prompts and the embedded toy task.

The toy: chained arithmetic whose answer a rule can check, five difficulty levels (level L has L
operations), e.g. level 3:

    Q: ((10-6)*5)-3
    A: 10-6=4. 4*5=20. 20-3=17. \\boxed{17}

Every value stays in 1..99 and operands are small, so the arithmetic facts are learnable in minutes. The reasoning
traces that warm-start the base model vary in verbosity: one latent knob per trace switches on a
restatement of the problem, a re-check after each step ("check 4*5=20 ok."), and a closing sentence.
Correct traces for the same problem differ by 3x or more in length, and the knob leans verbose (the
larger of two uniform draws), so the base model's mean length sits well above the shortest correct
trace: that gap is the length RL can remove.
Some steps slip (a wrong result is written); a re-check catches the slip and redoes the step, an
unchecked slip carries through to a wrong answer. So verbosity is mostly padding, partly real
verification: the mix a concise-reasoning method has to sort out.

Train and test problems are split by a stable hash of the expression, so they are disjoint by
construction and every seed agrees on the split. A variant of the task (another operation, say) is a change
to `random_step` (which operations apply to a value, and their operands) and `APPLY`; train_sft.py draws its
traces through `make_problem` too. A new draw shifts the random stream, and with it every problem and trace.

Records everywhere are JSONL `{"id", "problem", "answer", "level"}` (plus "subject" where a MATH record has a
`subject` or `type`: nothing reads it, but it is hashed with the problems --resume checks). `read_problems` also takes
MATH-style files: `question` for `problem`, `unique_id` for `id`, `"Level 5"` for 5, and a gold answer given
only as the last `\\boxed{}` of a `solution`. A record without an id is named by its line: "line 7".
"""

import hashlib
import json
import operator
import os
import random
import re
import sys
from decimal import Decimal

from common import (InputError, Parser, cannot_create, cli, decimal_text, non_negative_int, positive_int, read_jsonl,
                    write_jsonl)
from distributed import is_main
from reward import BOX_COMMAND, extract_answer

LEVELS = (1, 2, 3, 4, 5)
MAX_VALUE = 99
SLIP_RATE = 0.08  # share of steps written wrong in the traces
TEST_SHARE = 5  # one expression in 5 belongs to the test split
PAPER_NEW_TOKENS = 8192  # the paper's response cut-off
INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."  # the paper's


# ----------------------------------------------------------------------------------------------------
# Problems


def split_of(problem: str) -> str:
    """"test" or "train", from a stable hash of the expression (Python's hash() is salted per process)."""
    digest = int(hashlib.md5(problem.encode()).hexdigest()[:8], 16)
    return "test" if digest % TEST_SHARE == 0 else "train"


APPLY = {"+": operator.add, "-": operator.sub, "*": operator.mul}  # the toy's operations


def random_step(rng, value):
    """One operation (op, operand, result) applicable to `value` that keeps the result in 1..MAX_VALUE.

    Operands are small (+/- up to 19, * up to 9): a tiny model can learn that many arithmetic facts in
    minutes, while the chain of steps and the copying of operands out of the nested expression is what
    makes the high levels hard.
    """
    ops = [op for op, ok in (("+", value <= MAX_VALUE - 2), ("-", value >= 3), ("*", 2 * value <= MAX_VALUE)) if ok]
    op = rng.choice(ops)
    if op == "+":
        b = rng.randint(2, min(19, MAX_VALUE - value))
    elif op == "-":
        b = rng.randint(2, min(19, value - 1))
    else:
        b = rng.randint(2, min(9, MAX_VALUE // value))
    return op, b, APPLY[op](value, b)


def make_problem(rng, level):
    """A level-`level` chain: (start value, [(op, operand, result), ...], expression text)."""
    start = rng.randint(2, 30)
    steps, value, text = [], start, str(start)
    for i in range(level):
        op, b, value = random_step(rng, value)
        steps.append((op, b, value))
        text = f"{'(' + text + ')' if i else text}{op}{b}"
    return start, steps, text


def parse_problem(text):
    """Inverse of make_problem for the toy's expressions: (start, steps)."""
    tokens = []
    body = text.replace("(", "").replace(")", "")
    num = ""
    for ch in body:
        if ch.isdigit():
            num += ch
        else:
            tokens.append(int(num))
            tokens.append(ch)
            num = ""
    tokens.append(int(num))
    start, steps, value = tokens[0], [], tokens[0]
    for op, b in zip(tokens[1::2], tokens[2::2]):
        value = APPLY[op](value, b)
        steps.append((op, b, value))
    return start, steps


def make_split(split, n_per_level, seed, max_tries=100):
    """Up to n_per_level distinct problems per level from one split, deterministic in seed.

    Level 1 has only about a thousand distinct problems, so a level stops early once max_tries * n_per_level
    draws in a row bring nothing new; the caller can see how many it got.
    """
    rng = random.Random(f"{split}-{seed}")
    records, seen = [], set()
    for level in LEVELS:
        count = misses = 0
        while count < n_per_level and misses < max_tries * n_per_level:
            _, steps, text = make_problem(rng, level)
            if text in seen or split_of(text) != split:
                misses += 1
                continue
            seen.add(text)
            records.append({"id": f"{split}-L{level}-{count}", "problem": text, "answer": str(steps[-1][2]),
                            "level": level})
            count, misses = count + 1, 0
    return records


# ----------------------------------------------------------------------------------------------------
# Traces


def slipped(rng, result):
    """A plausible wrong result: off by one, two or ten (carry mistakes), still a positive number."""
    for delta in rng.sample([-10, -2, -1, 1, 2, 10], 6):
        if result + delta >= 1:
            return result + delta
    return result + 1


# make_trace's padding, by the words that open each kind: what phase 2 cuts (demo.py counts them)
PADDING = {"re-checks": "check ", "restatements": "We need ", "closings": "So the answer is "}


def padding_counts(texts):
    """The mean number of each kind of PADDING per response in `texts` (responses to toy problems)."""
    return {kind: sum(text.count(words) for text in texts) / max(1, len(texts)) for kind, words in PADDING.items()}


def make_trace(rng, problem, verbosity=None, slip_rate=SLIP_RATE):
    """A reasoning trace for a toy problem; verbosity in [0, 1] (random when None) sets the padding.

    Returns (text, final value); the final value is wrong when a slip went unchecked.
    """
    start, steps = parse_problem(problem)
    v = max(rng.random(), rng.random()) if verbosity is None else verbosity
    parts = [f"We need {problem}. Step by step."] if rng.random() < v else []
    value = start
    for op, b, _ in steps:
        right = APPLY[op](value, b)
        written = slipped(rng, right) if rng.random() < slip_rate else right
        parts.append(f"{value}{op}{b}={written}.")
        if rng.random() < v:  # a re-check recomputes the step and repairs a slip
            if written == right:
                parts.append(f"check {value}{op}{b}={right} ok.")
            else:
                parts.append(f"check {value}{op}{b}={right} no. {value}{op}{b}={right}.")
                written = right
        value = written
    if rng.random() < v:
        parts.append(f"So the answer is {value}.")
    parts.append(f"\\boxed{{{value}}}")
    return " ".join(parts), value


# ----------------------------------------------------------------------------------------------------
# Prompts and records (toy and MATH-style)


def prompt_text(problem, tokenizer):
    """The text a model is prompted with: the problem and the paper's instruction in the model's chat
    template; a Hugging Face tokenizer with no template (a base model) gets them in the plain format
    "Q: ...\\n<instruction>\\nA: ", and the byte-level toy, which boxes its answers unasked, "Q: ...\\nA: "."""
    if tokenizer.chat_template is not None:
        return tokenizer.apply_chat_template([{"role": "user", "content": f"{problem}\n{INSTRUCTION}"}],
                                             add_generation_prompt=True)
    return f"Q: {problem}\nA: " if tokenizer.byte_level_toy else f"Q: {problem}\n{INSTRUCTION}\nA: "


class DataError(InputError):
    """A problems file that cannot be used; the message names the file and line."""


def answer_field(rec):
    """A record's 'answer', or None where it is null or blank text beside a MATH 'solution' (pandas writes a
    missing text column as ""): the gold then comes from the solution's box."""
    answer = rec.get("answer")
    blank = isinstance(answer, str) and not answer.strip() and isinstance(rec.get("solution"), str)
    return None if blank else answer


def gold_answer(rec, where):
    """The gold answer of a record as text: `answer` (a JSON number is written out in full: 1e-05 ->
    0.00001; GSM8K's "... #### 29" gives 29; a whole solution gives its last \\boxed{}), else the last \\boxed{}
    of MATH's `solution`."""
    answer = answer_field(rec)
    if isinstance(answer, str) and "####" in answer:  # GSM8K: the reasoning, then "#### <answer>"
        answer = answer.rsplit("####", 1)[1].strip().replace(",", "")
    elif isinstance(answer, str) and BOX_COMMAND.search(answer):  # a solution, or a boxed answer: what its box holds
        answer = extract_answer(answer)
        if answer is None:
            raise DataError(f"{where}: its 'answer' has a \\boxed{{}} with nothing readable in it")
    elif answer is None and isinstance(rec.get("solution"), str):
        answer = extract_answer(rec["solution"])
        if answer is None:
            raise DataError(f"{where}: no 'answer', and no \\boxed{{}} answer in its 'solution'")
    if answer is None:
        raise DataError(f"{where}: no 'answer' (or MATH 'solution' with a \\boxed{{}} answer)")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, Decimal)):
        raise DataError(f"{where}: 'answer' must be text or a number, got {json.dumps(answer, default=str)[:40]}")
    answer = decimal_text(answer).strip()
    if not answer:
        raise DataError(f"{where}: empty 'answer'; such a problem can never be solved")
    return answer


def problem_level(level, where):
    """An integer level from 5, "5" or MATH's "Level 5"; None when absent or MATH's "Level ?"."""
    if level is None or isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, Decimal) and level == level.to_integral_value() and abs(level) < 1000:  # 5.0: pandas's
        return int(level)  # (a column with a gap); not 1e5000, a 5001-digit int
    if isinstance(level, str):
        digits = level.removeprefix("Level").strip()
        if digits.isascii() and digits.isdigit():  # not "²", which isdigit() accepts and int() refuses
            return int(digits)
        if digits == "?":
            return None
    raise DataError(f"{where}: 'level' must be an integer or \"Level N\", got {json.dumps(level, default=str)[:40]}")


def normalize_record(rec, where):
    """{"id", "problem", "answer", "level"} (and "subject") from a toy, MATH- or GSM8K-style record (see the module
    docstring).
    where: "path:line". An id-less record is "line N", not named by its path: a moved file keeps its ids,
    so a run on it can still resume (its problems are checked by content, ids included)."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object")
    problem = rec.get("problem") if rec.get("problem") is not None else rec.get("question")  # null: absent
    if not isinstance(problem, str) or not problem.strip():
        raise DataError(f"{where}: no 'problem' (or 'question') text; its keys: {', '.join(rec)[:200]}")
    unnamed = "line " + where.rpartition(":")[2]
    name = next((rec[k] for k in ("id", "unique_id") if rec.get(k) is not None), unnamed)  # null: no id
    out = {"id": decimal_text(name), "problem": problem,
           "answer": gold_answer(rec, where), "level": problem_level(rec.get("level"), where)}
    for key in ("id", "problem", "answer"):
        try:
            out[key].encode("utf-8")
        except UnicodeEncodeError:  # JSON's "\ud800" alone: no character, and no file can hold it
            raise DataError(f"{where}: its {key} holds a lone surrogate escape (\\ud800-\\udfff), not text") from None
    for key in ("subject", "type"):
        if key in rec:
            out["subject"] = rec[key]
    return out


PLACEHOLDER_GOLDS = {"proof", "notfound"}  # NuminaMath's answers of proof problems and of those without one
RECORD_KEYS = {"id", "unique_id", "problem", "question", "answer", "solution", "level", "subject", "type"}


def not_jsonl(path):
    """What a file that cannot be JSON Lines is, from its first bytes (None if it may be)."""
    with open(path, "rb") as f:
        head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed: gunzip it first"
    if head.startswith(b"PAR1"):
        return ("a Parquet file, not JSON Lines: convert it, e.g. "
                "pandas.read_parquet(IN).to_json(OUT, orient='records', lines=True)")
    if head.startswith(b"["):
        return "a JSON array, not JSON Lines: write one object per line (jq -c '.[]' IN > OUT.jsonl)"
    if b"\r" in head.rstrip(b"\r") and b"\n" not in head:  # (a CRLF line cut by the 4096 bytes ends in \r)
        return "lines end in a lone carriage return (old Mac style): convert them to newlines (tr '\\r' '\\n')"
    if head.startswith(b"{") and head.split(b"\n", 1)[0].strip() == b"{":  # an object written over several lines
        first_key = re.match(rb'\{\s*"([^"\\]*)"', head)
        if first_key and first_key[1].decode("utf-8", "replace").lower() in RECORD_KEYS:  # records, each over several lines
            return ("records written over several lines (as jq . or json.dump(indent=...) write them), not JSON Lines "
                    "(one object per line): write each on one line (jq -c . IN > OUT.jsonl)")
        return ("one JSON document written over several lines, not JSON Lines (one object per line): write its "
                "records one per line, e.g. jq -c '.[]' or jq -c '.data[]' (where the records are) IN > OUT.jsonl")
    if head[:1].isascii() and head[:1] not in (b"{", b""):  # a CSV, say (other encodings: read_jsonl's message)
        return "not JSON Lines (one JSON object per line): convert it first"
    return None


def first_ids(ids, n=5):
    """The first n ids, quoted, for a note ("'a', 'b', ..." when there are more)."""
    return ", ".join(map(repr, ids[:n])) + (", ..." if len(ids) > n else "")


def read_problems(path, levels=None):
    """Problem records of a JSONL file (toy, MATH- or GSM8K-style), optionally only those at `levels`.

    Refused with a DataError naming file and line: malformed lines, records without a problem or answer,
    and two records with the same id (1 and "1" included), which would be merged in per-problem figures.
    A gold answer taken from a solution (or an 'answer' holding one) with several boxes (reward.extract_answer:
    the last, with the boxes side by side before it; a partial answer where each box holds one of several, apart)
    is named in a note on stderr.
    """
    if os.path.isfile(path) and (what := not_jsonl(path)):
        raise DataError(f"{path}: {what}")
    if os.path.isdir(path) and any(name.endswith(".json") for _, _, names in os.walk(path) for name in names):
        raise DataError(f"{path} is a folder of JSON files (MATH's own release: a file a problem), not a problems file: "
                        f"make one with find {path} -name '*.json' | sort | xargs jq -c '. + {{id: input_filename}}' > "
                        "problems.jsonl (each file's path its id)")
    records, seen, several, placeholders = [], {}, [], []
    for where, rec in read_jsonl(path, "problems file", parse_float=Decimal):
        record = normalize_record(rec, where)
        if record["answer"].lower() in PLACEHOLDER_GOLDS:
            placeholders.append(record["id"])
        boxed_from = answer_field(rec)  # the text gold_answer reads
        boxed_from = rec.get("solution") if boxed_from is None else boxed_from
        if isinstance(boxed_from, str) and len(BOX_COMMAND.findall(boxed_from)) > 1:
            several.append(record["id"])
        if record["id"] in seen:
            named = any(rec.get(k) is not None for k in ("id", "unique_id"))  # else named by its line, which
            # another record took as its id
            raise DataError(f"{where}: {'id' if named else 'no id, and its name'} {record['id']!r} already used at "
                            f"{seen[record['id']]}; ids must be unique" + ("" if named else ": give this one an id"))
        seen[record["id"]] = where
        records.append(record)
    if not records:
        raise DataError(f"{path}: no problems in file")
    if several and is_main():
        print(f"note: {path}: {len(several)} of {len(records)} problems have several \\boxed{{}} in their solution or "
              f"answer ({first_ids(several)}): the gold answer is the last, with the boxes side by side before it as a "
              "list; where that is not the whole answer, give it as 'answer'", file=sys.stderr)
    if placeholders and is_main():
        print(f"note: {path}: {len(placeholders)} of {len(records)} problems have the gold 'proof' or 'notfound' "
              f"({first_ids(placeholders)}), NuminaMath's marks for a proof and for a missing answer: no response can "
              "match them, so they only cost samples; leave them out of the file", file=sys.stderr)
    if levels:
        unlevelled = all(r["level"] is None for r in records)
        records = [r for r in records if r["level"] in set(levels)]
        if not records:
            raise DataError(f"{path}: no problems at levels {sorted(set(levels))}"
                            + (": no record has a 'level'" if unlevelled else ""))
    return records


def pick_problems(problems, n, seed, step):
    """Problems for this step: consecutive slices of a seeded shuffle, reshuffled every epoch. A function
    of (seed, step) alone, so a resumed run picks what the uninterrupted one would have. A step that straddles
    two epochs takes no problem twice (for n up to the number of problems): the problems it takes at the end
    of one epoch go to the end of the next epoch's order."""
    size, first, end = len(problems), step * n, (step + 1) * n  # this step's picks: first ... end - 1
    orders = epoch_orders(size, n, seed, (end - 1) // size)
    return [problems[orders[j // size][j % size]] for j in range(first, end)]


_ORDERS = {}  # (size, n, seed) -> the orders of epochs 0, 1, ... worked out so far


def epoch_orders(size, n, seed, last):
    """The problem order of each epoch up to `last`. Each depends on the one before (what a straddling step
    took of it), so they are worked out in turn, once per process: replaying them all at every step made a
    step's pick take 0.4 s at step 10,000 of an 8-problem set."""
    orders = _ORDERS.setdefault((size, n, seed), [])
    while len(orders) <= last:
        start = len(orders) * size
        # What the step that straddles into this epoch (it began at pick start // n * n) took of the last one
        taken = set(orders[-1][max(0, start // n * n - (start - size)) :]) if orders else set()
        order = list(range(size))
        random.Random(f"{seed}-{len(orders)}").shuffle(order)
        orders.append([i for i in order if i not in taken] + [i for i in order if i in taken])
    return orders


def new_tokens_that_fit(problems, tok, context):
    """The --max-new-tokens of eval.py and select_problems.py when none is given: the paper's 8,192, or what the
    model's context leaves after the longest prompt where that is less (about 480 on the toy)."""
    lengths = {p["id"]: len(tok.encode(prompt_text(p["problem"], tok))) for p in problems}
    longest = max(lengths, key=lengths.get)
    if lengths[longest] >= context:
        raise DataError(f"problem {longest!r}: its prompt of {lengths[longest]} tokens leaves no room for a response "
                        f"in the model's context of {context}; shorten the problem or leave it out")
    return min(PAPER_NEW_TOKENS, context - lengths[longest])


def encode_prompts(problems, tok, max_new_tokens, context):
    """The prompt ids of each problem; refuses a prompt that leaves no room for max_new_tokens."""
    prompts = [tok.encode(prompt_text(p["problem"], tok)) for p in problems]
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i]))
    if len(prompts[longest]) + max_new_tokens > context:
        raise DataError(f"problem {problems[longest]['id']!r}: its prompt of {len(prompts[longest])} tokens plus "
                        f"{max_new_tokens} new tokens exceeds the model's context of {context}; shorten the problem "
                        "or lower --max-new-tokens")
    return prompts


@cli
def main(argv=None):
    p = Parser(description="Write the toy task's train/test problem files, or show traces.")
    p.add_argument("--out", default="data", help="folder for toy_train.jsonl and toy_test.jsonl")
    p.add_argument("--train-per-level", type=positive_int, metavar="N", default=2000, help="train problems per level, "
                   "at most (level 1 has only about 1000 distinct problems, 821 of them in the train split)")
    p.add_argument("--test-per-level", type=positive_int, metavar="N", default=200, help="test problems per level")
    p.add_argument("--seed", type=int, metavar="N", default=0, help="problem generation seed")
    p.add_argument("--show", type=non_negative_int, metavar="N", default=0, help="print this many example traces and exit")
    args = p.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"--out {args.out} is a file; give a folder for toy_train.jsonl and toy_test.jsonl")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {args.out}: cannot create it ({cannot_create(args.out, e)})") from None
    if args.show:
        rng = random.Random(args.seed)
        for i in range(args.show):
            level = LEVELS[i % len(LEVELS)]
            problem = make_problem(rng, level)[2]
            print(f"Q: {problem}\nA: {make_trace(rng, problem)[0]}\n")
        return
    for split, n in (("train", args.train_per_level), ("test", args.test_per_level)):
        path = os.path.join(args.out, f"toy_{split}.jsonl")
        records = make_split(split, n, args.seed)
        write_jsonl(records, path)
        counts = [sum(r["level"] == lv for r in records) for lv in LEVELS]
        print(f"wrote {len(records)} problems to {path} (per level: {counts})")


if __name__ == "__main__":
    main()
