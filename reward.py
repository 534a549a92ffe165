r"""The paper's rule-based correctness reward: +1 correct, -0.5 boxed but wrong, -1 no boxed answer.

Fatemi et al. (2025) train with correctness only: no length term, no partial credit. A reward that
a policy can game (substring matching, "any box counts", hedged lists of candidates) would teach
the model the loophole instead of maths, so every rule here errs towards "not equal".

    python reward.py --response 'so the total is \boxed{\frac{1}{2}}.' --gold 0.5
    python reward.py --jsonl rollouts.jsonl --response-key response --gold-key answer

Extraction (`extract_answer`)
  * The LAST `\boxed{...}` or `\fbox{...}` decides (`\fboxsep` is not a box); nested braces are
    matched, `\{` and `\}` are literal. `\boxed {5}` counts, as does a one-token box: `\boxed 5` or
    `\boxed5` (one token up to whitespace or `$`, less the prose after it: `\boxed 5, so` and
    `(so \boxed 5).` hold `5`; `\boxed.` and `\boxed\;5` are empty boxes).
  * No fallback to an earlier box: if the last one never closes (a truncated response; also any box
    longer than MAX_ANSWER_CHARS) or is empty/blank (`\boxed{}`), there is no answer (reward -1).
  * `allow_unboxed=True` (off by default, as in the paper) also reads GSM8K `#### 42` and then the
    last "the answer is 42" (to the end of its sentence), but only when the text has no box at all.

Equivalence (`is_equiv`), after `normalize_answer` on both sides
  * Layout is ignored: `$`, `\left`/`\right` (and the invisible `\left.`), spaces (but not between
    two digits: `2 1/2` != `21/2`) and `\! \, \; \: \quad`, `\displaystyle`, a trailing period,
    `\dfrac`/`\tfrac`/`\cfrac` (= `\frac`), `\frac12`, `\sqrt2`, `x^{2}` (= `x^2`), `\text{}`/`\mbox{}`/
    `\mathrm{}`/`\textbf{}` wrappers, `\text{(C)}` = `C`, `+\infty` = `∞` = `\infty`, `\varnothing` =
    `\emptyset`, `bmatrix` = `pmatrix`.
  * Names: an answer, or each item of a list, may start with `x =`, `p(x) =` or `\theta =`. When
    one side names no variable, values alone compare (`x = 5` == `5`, `x = 1, x = 2` == `1, 2`);
    when both do, the names must agree too (`x = 5` != `y = 5`, `x = 1, y = 2` != `x = 2, y = 1`).
  * Dropped: `\$`, `\%` (so `50\%` == `50`, but != `0.5`), degrees (`^\circ`, `30\circ`, `°`),
    and a fixed list of unit words (`5 \text{ cm}^2` == `5`); other words are kept, so a hedge such
    as `2 \text{ or } 3` cannot pass for `2`.
  * Thousands separators: `1{,}000`, `1,\!000` and `1\,000` anywhere, and a plain comma when the whole answer
    is grouped by threes: `1,000` == `1000`, but `1, 234` is a list.
  * Exact values of the form c * sqrt(r) * pi^k, c rational, from integers, decimals, signs,
    `\frac{a}{b}`, `a/b`, `\sqrt{}`, `\pi`: 0.5 == 1/2 == \frac{1}{2}, -\frac{1}{2} == \frac{-1}{2},
    \sqrt{8} == 2\sqrt{2}, \frac{\pi}{2} == \pi/2; but 1/3 != 0.333 (fractions.Fraction, no floats).
  * Tuples and intervals `(a, b)`, `[a, b)` compare element-wise and the brackets must match;
    a bare list `a, b` or a set `\{a, b\}` compares as a multiset, so "1, 2" != "1".
  * A gold answer stored still boxed (`\boxed{5}`) is unwrapped.
  * Anything else compares as normalised text (case-sensitive).
Not recognised (a right answer in these forms scores as wrong): algebra (`x+1` vs `1+x`, sums of radicals),
scientific notation, mixed numbers (`2\frac{1}{2}` is ambiguous with a product: text only), `\pm`,
numbers longer than MAX_DIGITS digits (text only), answers longer than MAX_ANSWER_CHARS (raw text).
An empty answer never matches. No function raises on `str` input, and the work is bounded: every
scan is linear, and answers past MAX_ANSWER_CHARS skip normalisation (1 MB of text: a few ms).
"""

import argparse
import math
import re
from collections import Counter
from fractions import Fraction

from common import InputError, Parser, cli, read_jsonl

MAX_ANSWER_CHARS = 1_000  # real final answers (matrices included) are a few hundred at most; bounds the work
MAX_DIGITS = 300  # longer digit strings compare as text (int() of huge strings is slow or raises)
MAX_RADICAND = 10_000  # keeps the square-factor search of sqrt(r) tiny
MAX_DEPTH = 8  # nesting of \frac / \sqrt that _value follows before giving up

_BOX_COMMANDS = ("\\boxed", "\\fbox")
# The box commands spelt backwards, for a search of the reversed text whose first match is the last box; each
# starts with its literal (a fast scan) and then checks that no letter follows the command (not \fboxsep).
_BOXES_REVERSED = [re.compile(re.escape(c[::-1]) + f"(?<![A-Za-z]{re.escape(c[::-1])})") for c in _BOX_COMMANDS]
_UNIT = (r"(?:(?:square|sq|cubic)\s+)?(?:units?|cm|mm|km|m|meters?|metres?|centimeters?|kilometers?"
         r"|inch(?:es)?|in|feet|foot|ft|yards?|miles?|mph|degrees?|radians?|dollars?|cents?|seconds?"
         r"|minutes?|hours?|days?|weeks?|months?|years?|grams?|kg|pounds?|lbs?|ounces?|liters?"
         r"|gallons?|percent)(?:\s*\^\s*\{?[23]\}?)?")
_REWRITES = [(re.compile(pattern), replacement) for pattern, replacement in [
    (r"(?<=\d)(?:\{,\}|,\\!|\\,)(?=\d{3}(?!\d))", ""),  # thousands, spelt unambiguously: 1{,}000, 1,\!000, 1\,000
    (r"(?<!\\)\\[!,;:> ]|\\(?:q?quad|displaystyle)(?![A-Za-z])|~", " "),  # spacing, not the \\ of a row
    (r"\\\$|\$", ""),  # math delimiters and dollar signs: \$18.90 -> 18.90
    (r"\\(?:left|right)(?:\.|(?![A-Za-z]))", ""),  # \left( 1, 2 \right) -> (1, 2); `\left.` shows nothing
    (r"\\[dtc]frac(?![A-Za-z])", r"\\frac"),
    (r"−", "-"),
    (r"π", r"\\pi "),
    (r"(?:(?:^|(?<=[,(\[]))\s*\+\s*)?(?:\\infty(?![A-Za-z])|∞)", r"\\infty "),  # [2, +\infty) -> [2, \infty)
    (r"\\varnothing(?![A-Za-z])|∅", r"\\emptyset "),
    (r"(?<=\\begin\{)bmatrix\}|(?<=\\end\{)bmatrix\}", "pmatrix}"),  # brackets or parentheses: one matrix
    (r"\^\s*\{?\s*\\circ\s*\}?|(?<=\d)\s*\\circ(?![A-Za-z])|°", ""),  # 30^\circ, 30^{\circ} -> 30; not f \circ g
    (r"\\?%", ""),  # 50\% -> 50
    (r"\\(?:text|mbox|mathrm)\s*\{\s*" + _UNIT + r"\s*\}(?:\s*\^\s*\{?[23]\}?)?", ""),  # 5\text{ cm}^2
    (r"\\(?:text|textbf|mbox|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1"),  # \text{(C)} -> (C)
    (r"(?<=[\d}])\s+" + _UNIT + r"\s*$", ""),  # bare trailing unit: 5 cm -> 5
]]
_NAME = re.compile(r"((?:[A-Za-z]|\\[A-Za-z]+)(?:\s*\(\s*[A-Za-z]\s*\))?)\s*=\s*")  # x =, p(x) =, \theta =
# Spaces go, except between two digits, which stay apart: `2 1/2` is not 21/2 (but `\log_2 3` is `\log_23`).
_SPACES = re.compile(r"(?<=\d)(?<![_^]\d)(\s+)(?=\d)|\s+")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SHORTHANDS = [(re.compile(pattern), replacement) for pattern, replacement in [
    (r"\\sqrt(\w)", r"\\sqrt{\1}"),  # \sqrt2 -> \sqrt{2}
    (r"([_^])\{(\w)\}", r"\1\2"),  # x^{2} -> x^2, \log_{2} -> \log_2
    (r"\\frac(\d)(\d)", r"\\frac{\1}{\2}"),  # \frac12 -> \frac{1}{2}
    (r"\\frac(\d)(?=\{)", r"\\frac{\1}"),  # \frac1{2}
    (r"(\\frac\{[^{}]*\})(\d)", r"\1{\2}"),  # \frac{1}2
    (r"^\(([A-E])\)$", r"\1"),  # multiple choice: (C) -> C
]]
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_BOX_SPACE = re.compile(r"[ \t]*")
_BOX_BRACE = re.compile(r"\s*\{")  # LaTeX reads a newline before the argument as a space
_BOX_TOKEN = re.compile(r"(?:\w|[-+.(\[]|\\[A-Za-z])[^\s$]*")  # not `\boxed\;5`: an empty box, then 5
_ANSWER_PHRASES = ("answer is", "Answer is", "ANSWER IS")  # rfind, not lower(): lower() can shift indices
_SENTENCE_END = re.compile(r"\.(?:\s|$)")  # a period that ends a sentence, not the one in 3.5

# An exact value c * sqrt(r) * pi^k as (c, r, k), with r square-free so that equal values are equal tuples.
Value = tuple[Fraction, int, int]


# --------------------------------------------------------------------------------------------------
# Extraction


def _closing_brace(s: str, i: int) -> int:
    """Index of the `}` matching the `{` at s[i], or -1 if it does not close within MAX_ANSWER_CHARS.

    A plain linear scan (regexes cannot match nesting, and nested-quantifier tricks backtrack);
    the bound keeps a 1 MB run of braces cheap. A backslash escapes the next character: `\\{` is a
    literal brace, `\\\\{` is a line break followed by a real brace.
    """
    depth, end = 0, min(len(s), i + MAX_ANSWER_CHARS + 2)
    while i < end:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _box_content(text: str, i: int) -> str | None:
    """What the box command ending at text[i] holds: `{...}` (nested), or one token (`\\boxed 5`,
    `\\boxed5`) less the prose after it: `\\boxed 5,` and `(so \\boxed 5).` hold `5`."""
    if brace := _BOX_BRACE.match(text, i):
        end = _closing_brace(text, brace.end() - 1)
        return text[brace.end():end] if end >= 0 else None
    token = _BOX_TOKEN.match(text, _BOX_SPACE.match(text, i).end())
    if not token or len(token.group()) > MAX_ANSWER_CHARS:
        return None
    answer = token.group().rstrip(".,;:")
    while answer.endswith(")") and answer.count(")") > answer.count("("):  # a parenthesis the box is inside
        answer = answer[:-1].rstrip(".,;:")
    return answer


def _unboxed_answer(text: str) -> str | None:
    """GSM8K's `#### 42`, else the last 'the answer is ...' up to the end of its sentence."""
    start = text.rfind("####")
    if start >= 0:
        start += len("####")
    else:
        start = max(text.rfind(phrase) for phrase in _ANSWER_PHRASES)
        if start < 0:
            return None
        start += len(_ANSWER_PHRASES[0])
    line = text[start:start + MAX_ANSWER_CHARS].split("\n", 1)[0]
    answer = _SENTENCE_END.split(line, maxsplit=1)[0].strip().lstrip(":").strip()
    return answer or None


def extract_answer(text: str, allow_unboxed: bool = False) -> str | None:
    """The final answer of a response: the content of its last box, stripped; None if it has none.

    The last box is authoritative even when malformed, so an earlier draft box (or one quoted from
    the problem) cannot stand in for a truncated or empty final answer.
    """
    reversed_text = text[::-1]
    starts = [box.start() for pattern in _BOXES_REVERSED if (box := pattern.search(reversed_text))]
    if not starts:
        return _unboxed_answer(text) if allow_unboxed else None
    answer = _box_content(text, len(text) - min(starts))
    if answer is None or not answer.strip():
        return None  # an empty box is no answer: `\boxed{}` must not beat the no-answer penalty
    return answer.strip()


# --------------------------------------------------------------------------------------------------
# Normalisation and exact values


def normalize_answer(s: str) -> str:
    r"""Canonical text of an answer, e.g. `x = \left( \dfrac12, 1{,}000 \right).` -> `x=(\frac{1}{2},1000)`."""
    if len(s) > MAX_ANSWER_CHARS:
        return s.strip()  # not an answer anyone writes; compared as raw text, in bounded time
    s = s.strip()
    for command in _BOX_COMMANDS:  # a gold answer stored still boxed: `\boxed{5}` -> `5`
        if s.startswith(command + "{") and _closing_brace(s, len(command)) == len(s) - 1:
            s = s[len(command) + 1:-1]
    for pattern, replacement in _REWRITES:
        s = pattern.sub(replacement, s)
    s = s.strip().removesuffix(".").strip()
    name = _NAME.match(s)  # `x = 1,000`: the thousands rule reads what follows the name
    head, s = (name.group(1) + "=", s[name.end():]) if name else ("", s)
    if _THOUSANDS.fullmatch(s):  # before spaces go, so that the list "1, 234" is not 1234
        s = s.replace(",", "")
    s = _SPACES.sub(lambda space: " " if space.group(1) else "", head + s)
    for pattern, replacement in _SHORTHANDS:
        s = pattern.sub(replacement, s)
    return s


def _canonical(c: Fraction, r: int, k: int) -> Value | None:
    """(c, r, k) with the square factors of r moved into c, so sqrt(8) and 2 sqrt(2) agree."""
    if c == 0 or r == 0:
        return Fraction(0), 1, 0
    if r > MAX_RADICAND:
        return None
    for f in range(math.isqrt(r), 1, -1):
        if r % (f * f) == 0:
            return c * f, r // (f * f), k
    return c, r, k


def _multiply(a: Value | None, b: Value | None) -> Value | None:
    return None if a is None or b is None else _canonical(a[0] * b[0], a[1] * b[1], a[2] + b[2])


def _divide(a: Value | None, b: Value | None) -> Value | None:
    """a / b, rationalising the denominator: 1 / sqrt(r) = sqrt(r) / r."""
    if a is None or b is None or b[0] == 0:
        return None
    return _canonical(a[0] / (b[0] * b[1]), a[1] * b[1], a[2] - b[2])


def _split_top(s: str, sep: str) -> list[str] | None:
    """Split s at `sep` outside brackets and braces; None if the brackets do not nest."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif c == sep and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    return parts + [s[start:]] if depth == 0 else None


def _value(s: str, depth: int = 0) -> Value | None:
    r"""Exact value of a normalised product like `-2\sqrt{3}\pi`, `\frac{a}{b}` or `a/b`; else None."""
    if depth > MAX_DEPTH or not s:
        return None
    sign = -1 if s[0] == "-" else 1
    s = s[1:] if s[0] in "+-" else s
    if not s:
        return None
    halves = _split_top(s, "/")
    if halves is not None and len(halves) == 2:
        ratio = _divide(_value(halves[0], depth + 1), _value(halves[1], depth + 1))
        return _multiply((Fraction(sign), 1, 0), ratio)
    value: Value | None = (Fraction(sign), 1, 0)
    i = 0
    if number := _NUMBER.match(s):
        if len(number.group()) > MAX_DIGITS or s.startswith("\\frac", number.end()):
            return None  # huge, or a mixed number such as 2\frac{1}{2}
        value, i = (Fraction(sign) * Fraction(number.group()), 1, 0), number.end()
    while i < len(s) and value is not None:
        if s.startswith("\\pi", i) and not s[i + 3:i + 4].isalpha():
            value, i = _multiply(value, (Fraction(1), 1, 1)), i + 3
        elif s.startswith("\\sqrt{", i) and (end := _closing_brace(s, i + 5)) >= 0:
            radicand = _value(s[i + 6:end], depth + 1)
            if radicand is None or radicand[1:] != (1, 0) or radicand[0] < 0:
                return None
            root = _canonical(Fraction(1, radicand[0].denominator),
                              radicand[0].numerator * radicand[0].denominator, 0)
            value, i = _multiply(value, root), end + 1
        elif s.startswith("\\frac{", i) and (mid := _closing_brace(s, i + 5)) >= 0 \
                and s.startswith("{", mid + 1) and (end := _closing_brace(s, mid + 1)) >= 0:
            ratio = _divide(_value(s[i + 6:mid], depth + 1), _value(s[mid + 2:end], depth + 1))
            value, i = _multiply(value, ratio), end + 1
        else:
            return None
    return value


# --------------------------------------------------------------------------------------------------
# Equivalence and reward


def _signatures(s: str) -> tuple[tuple, tuple, bool]:
    """Hashable summaries of a normalised answer: (with the variables its items name, without them,
    whether it names any); see is_equiv.

    Tuples and intervals keep order and their brackets; bare lists and sets are multisets. Each
    element is its exact value when it has one, else its text.
    """
    head = _NAME.match(s)  # the name of a whole tuple or set: `x = (1, 2)`
    rest, whole = (s[head.end():], head.group(1)) if head else (s, "")
    brackets, items, lead = "", [s], ""
    if len(rest) >= 2 and rest[0] in "([" and rest[-1] in ")]" and len(parts := _split_top(rest[1:-1], ",") or []) >= 2:
        brackets, items, lead = rest[0] + rest[-1], parts, whole
    elif rest.startswith("\\{") and rest.endswith("\\}") and len(rest) >= 4 and (parts := _split_top(rest[2:-2], ",")):
        items, lead = parts, whole
    elif len(parts := _split_top(s, ",") or []) >= 2:  # a list: each item may name its own variable
        items = parts
    named = [_NAME.match(item) for item in items]
    names = [name.group(1) if name else "" for name in named]
    items = [item[name.end():] if name else item for item, name in zip(items, named)]  # x=1 -> 1
    keys = [_value(item) or item for item in items]
    summary = lambda keys: (brackets, tuple(keys)) if brackets else ("", frozenset(Counter(keys).items()))
    return (lead, summary(zip(names, keys))), summary(keys), bool(lead) or any(names)


def _math_verify_equiv(pred: str, gold: str) -> bool:
    """The optional `math-verify` grader (sympy-based, numeric tolerance: 0.333333 == 1/3 there)."""
    try:
        from math_verify import parse, verify
    except ImportError:
        message = "backend='math_verify' needs the math-verify package: pip install math-verify"
        raise ImportError(message) from None
    return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))


def is_equiv(pred: str | None, gold: str, backend: str = "default") -> bool:
    """Whether a predicted answer equals the gold answer (see the module docstring for the rules)."""
    if backend not in ("default", "math_verify"):
        raise ValueError(f"unknown backend {backend!r}: expected 'default' or 'math_verify'")
    if pred is None:
        return False
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return pred.strip() == gold.strip() != ""  # as in normalize_answer
    if backend == "math_verify":
        return _math_verify_equiv(pred, gold)
    a, b = normalize_answer(pred), normalize_answer(gold)
    if not (a and b):
        return False
    if a == b:
        return True
    (named_a, bare_a, names_a), (named_b, bare_b, names_b) = _signatures(a), _signatures(b)
    # Variables named on both sides must agree (`x = 5` != `y = 5`); one side naming none compares values
    # alone (`x = 5` == `5`, `x = 1, x = 2` == `1, 2`).
    return named_a == named_b or not (names_a and names_b) and bare_a == bare_b


def grade(response: str, gold: str, finished: bool = True) -> str:
    """ "correct", "wrong" (a boxed answer that is not equal) or "no_answer": the one rule of correctness
    used by training, evaluation and selection. A response that did not finish (cut off at the length
    limit) has no final answer, whatever its text holds."""
    pred = extract_answer(response) if finished else None
    if pred is None:
        return "no_answer"
    return "correct" if is_equiv(pred, gold) else "wrong"


def compute_reward(response: str, gold: str, correct: float = 1.0, wrong: float = -0.5,
                   no_answer: float = -1.0, finished: bool = True) -> float:
    """The paper's terminal reward: `correct` / `wrong` (boxed but not equal) / `no_answer` (no box)."""
    return {"correct": correct, "wrong": wrong, "no_answer": no_answer}[grade(response, gold, finished)]


# --------------------------------------------------------------------------------------------------
# Command line


def _score_jsonl(args: argparse.Namespace) -> None:
    """Score every record of a JSONL file and print one summary line (plus one line per record with -v)."""
    counts = Counter()
    for where, record in read_jsonl(args.jsonl, "responses file"):
        if not isinstance(record, dict) or args.response_key not in record or args.gold_key not in record:
            raise InputError(f"{where}: record lacks key {args.response_key!r} or {args.gold_key!r}")
        response, gold = record[args.response_key], record[args.gold_key]
        if not isinstance(response, str):
            raise InputError(f"{where}: {args.response_key!r} is not text")
        outcome = grade(response, str(gold))
        counts[outcome] += 1
        if args.verbose:
            print(f"{where}\t{outcome}\t{extract_answer(response)!r}\t{gold!r}")
    n = sum(counts.values())
    if n == 0:
        raise InputError(f"{args.jsonl}: no records to score")
    rewards = {"correct": 1.0, "wrong": -0.5, "no_answer": -1.0}  # the paper's values
    mean = sum(rewards[k] * counts[k] for k in rewards) / max(n, 1)
    print(f"{n} responses: correct {counts['correct']}, wrong {counts['wrong']}, no answer {counts['no_answer']}; "
          f"mean reward {mean:+.3f}")


@cli
def main() -> None:
    parser = Parser(description="Score responses with the paper's correctness reward.")
    parser.add_argument("--response", help="one response text to score (use with --gold)")
    parser.add_argument("--gold", help="the gold answer for --response, e.g. '\\frac{1}{2}'")
    parser.add_argument("--jsonl", help="score every record of this JSONL file instead")
    parser.add_argument("--response-key", default="response", help="JSONL field holding the response")
    parser.add_argument("--gold-key", default="answer", help="JSONL field holding the gold answer")
    parser.add_argument("-v", "--verbose", action="store_true", help="with --jsonl, also print every record")
    args = parser.parse_args()
    if args.jsonl is not None:
        if args.response is not None or args.gold is not None:
            parser.error("give either --jsonl or --response/--gold, not both")
        _score_jsonl(args)
        return
    if args.response is None or args.gold is None:
        parser.error("give --response and --gold, or --jsonl")
    pred = extract_answer(args.response)
    print(f"extracted:  {pred!r}")
    print(f"normalised: {pred and normalize_answer(pred)!r} (gold: {normalize_answer(args.gold)!r})")
    print(f"equivalent: {is_equiv(pred, args.gold)}")
    print(f"reward:     {compute_reward(args.response, args.gold):+.1f}")


if __name__ == "__main__":
    main()
