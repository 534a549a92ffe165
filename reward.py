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
    `(so \boxed 5).` hold `5`; `\boxed.` and `\boxed\;5` are empty boxes). Braced boxes side by side
    before it, with nothing but `$`, spaces, commas, `and`/`or` between, are one list with it:
    `$\boxed{2}$ and $\boxed{3}$` holds `2, 3`, and a hedge `\boxed{2} or \boxed{3}` is not `3`; two boxes
    that hold one answer (`\boxed{0.5} or \boxed{\frac12}`) hold it; more than MAX_BOXES side by side hold none.
    A box inside a box is the outer one: `\boxed{2 \text{ or } \boxed{3}}` is not `3`.
  * The whole response is read, a reasoning model's thoughts too: a box before R1's `</think>` decides when no
    box follows it (`\boxed{7} ... </think> The answer is 8.` is graded 7).
  * No fallback to an earlier box: if the last one never closes (a truncated response; also any box
    longer than MAX_ANSWER_CHARS) or shows nothing once normalised (`\boxed{}`, `\boxed{\,}`), there is no
    answer (reward -1).
  * `allow_unboxed=True` (off by default, as in the paper) also reads GSM8K `#### 42` and then the
    last "the answer is 42" (to the end of its sentence), but only when the text has no box at all.

Equivalence (`is_equiv`), after `normalize_answer` on both sides
  * Layout is ignored: `$`, `\left`/`\right` (and the invisible `\left.`), spaces (but not between two digits:
    `2 1/2` != `21/2`) and `\! \, \; \: \quad`, `\displaystyle`, a trailing period, `\dfrac`/`\tfrac`/`\cfrac`
    (= `\frac`), `\dbinom` (= `\binom`), `\frac12`, `\frac 1 2`, `\sqrt2`, `x^{2}` (= `x^2`),
    `\text{}`/`\mbox{}`/`\mathrm{}`/`\textbf{}` wrappers, `\text{(C)}` = `C` = `(C)\ 12` (the choice alone
    against the choice with its value, a number: not `(C) or D`, `(C) 12, D`; and `(C)\ 12` != `(C)\ 15`),
    `+\infty` = `∞` = `\infty`, `\varnothing` = `\{\}` = `\emptyset`, `bmatrix` = `pmatrix`, `\langle 1, 2
    \rangle` = `(1, 2)`, `\mathbb{R}` = `\text{all real numbers}` = `(-\infty, \infty)`, and `x \ge 3` = `x
    \in [3, \infty)`, `2 \le x < 3` = `x \in [2, 3)`, `x < -2 \text{ or } x > 3` = `(-\infty, -2) \cup
    (3, \infty)`, `x > -2 \text{ and } x < 3` = `(-2, 3)`; a number in a base against its digits alone
    (`1011_2` = `1011`, but != `1011_3`, != `11`).
  * Words (two letters or more) ignore case: `\text{Odd}` == `odd`; a single letter does not (`a` != `A`).
  * Names: an answer, or each item of a list, may start with `x =`, `p(x) =`, `f^{-1}(x) =`, `\theta =` or
    (before a set) `x \in`; an equation turned round names its right side (`5 = x` is `x = 5`).
    When one side names no variable, values alone compare (`x = 5` == `5`, `x = 1, x = 2` == `2, 1`), in
    written order against items naming different variables (`x = 1, y = 2` == `1, 2` != `2, 1`); when both
    do, the names must agree too (`x = 5` != `y = 5`, `x = 1, y = 2` != `x = 2, y = 1`). A list whose first
    item alone is named names every item: `x = 1, 2` == `x = 1, x = 2` == `x \in \{1, 2\}`. A tuple
    may be named by a tuple (`(x, y) = (1, 2)`), and values named by single letters in alphabetical order
    are a point too: `x = 1, y = 2` == `(1, 2)` (but `y = 2, x = 1` is only the list).
  * Dropped: `\$`, `\%` (so `50\%` == `50`, but != `0.5`), degrees (`^\circ`, `30\circ`, `30\degree`, `°`), a unit
    word after a number (`5 \text{ cm}^2` == `5`, `45^\circ\text{C}` == `45`), and one last plural word after
    it, a count of things (`6 \text{ ways}` == `6`), unless it names a fraction or a power of ten or is not
    a count (`5 \text{ halves}`, `5 \text{ thousands}`, `5 \text{ more}` stay).
  * Lists: `a, b`, `a \text{ or } b`, `a \text{ and } b`, a set `\{a, b\}`, and `a \pm b` (= `a+b, a-b`)
    compare as multisets, so a hedge `2 \text{ or } 3` is not `2`. Tuples and intervals `(a, b)`,
    `[a, b)` and matrices compare element-wise; brackets and shapes must match. A union of intervals
    `(a, b) \cup (c, d)` compares as a multiset of intervals.
  * Thousands separators: `1{,}000`, `1,\!000` and `1\,000` anywhere, and a plain comma when the whole answer
    is grouped by threes: `1,000` == `1000`, but `1, 234` and `0,100` are lists.
  * Exact values (fractions.Fraction, no floats: 1/3 != 0.333): sums of terms c * sqrt(r) * monomial, c
    rational, from integers, decimals, `\frac{a}{b}`, `a/b`, `\sqrt{}`, `\pi`, single-letter variables,
    brackets, `\cdot`/`\times`, integer powers and mixed numbers (`2\frac{1}{4}` is 9/4; a fraction that is
    not proper after a number has no value: `2\frac{3}{2}`): 0.5 == 1/2 == (1/2), \sqrt{8} == 2\sqrt{2},
    \frac{\pi}{2} == \pi/2, 1+\sqrt{3} == \sqrt{3}+1, \frac{x}{2} == \frac{1}{2}x, 3\times 10^5 == 300000.
    What is left to compute is not an answer: a policy could box the problem's own `17 \cdot 23`, `2^{10}`
    or `0.\overline{36}`. So these have no value, and compare as text:
      - a sum with like terms (`90-45`, `\frac12+\frac13`);
      - a product with two coefficients, two radicals or two powers of ten (`2 \cdot 3`, `17(23\pi)`,
        `\sqrt{8}\sqrt{50}`), or a variable in two factors (`x^2 \cdot x^3`);
      - a power of anything but a variable, \pi or 10 (`2^{10}`, `\sqrt{3}^2`), or a bare `x^10`;
      - a fraction that cancels a variable (`\frac{15x^3}{5x}`), or a sum over anything but an integer that
        leaves it in lowest terms (`\frac{1+\sqrt5}{2}` has a value, `\frac{4x+6}{2}` has none);
      - a bracketed sum times anything (`2(x+1)` != `2x+2`); repeating decimals.
    A number over a number is still reduced (`\frac{6}{8}` == `\frac34`), so `12/4` does count as 3.
  * A gold answer stored still boxed (`\boxed{5}`) is unwrapped.
  * Anything else compares as normalised text (case-sensitive).
Not recognised (a right answer in these forms scores as wrong): the arithmetic above (`\sqrt{2}\sqrt{3}` is
not `\sqrt{6}`), repeating decimals, expanded against
factored forms (`(x+1)^2` vs `x^2+2x+1`), letters side by side (`xy` is a word, not a product), functions
(`\sin x` vs `\sin(x)`), `e` notation (`1e3`), cube and higher roots, degrees against radians, numbers
longer than MAX_DIGITS digits
(text only), answers longer than MAX_ANSWER_CHARS (raw text).
An empty answer never matches. No function raises on `str` input, and the work is bounded: every
scan is linear, and answers past MAX_ANSWER_CHARS skip normalisation (1 MB of text: a few ms).
"""

import argparse
import math
import re
from collections import Counter
from decimal import Decimal
from fractions import Fraction

from common import InputError, Parser, cli, decimal_text, read_jsonl

REWARDS = {"correct": 1.0, "wrong": -0.5, "no_answer": -1.0}  # the paper's, by grade()'s outcome
MAX_ANSWER_CHARS = 1_000  # real final answers (matrices included) are a few hundred at most; bounds the work
MAX_DIGITS = 300  # longer digit strings compare as text (int() of huge strings is slow or raises)
MAX_RADICAND = 10_000  # keeps the square-factor search of sqrt(r) tiny
MAX_DEPTH = 8  # nesting of \frac / \sqrt / brackets that _value follows before giving up
MAX_POWER = 100  # largest exponent (of a number or a variable) that _value works out
POWER_BITS = 4_000  # and the largest numerator or denominator a power may reach, in bits

_BOX_COMMANDS = ("\\boxed", "\\fbox")
BOX_COMMAND = re.compile("(?:" + "|".join(map(re.escape, _BOX_COMMANDS)) + ")(?![A-Za-z])")  # where a box starts
# The box commands spelt backwards, for a search of the reversed text whose first match is the last box; each
# starts with its literal (a fast scan) and then checks that no letter follows the command (not \fboxsep).
_BOXES_REVERSED = [re.compile(re.escape(c[::-1]) + f"(?<![A-Za-z]{re.escape(c[::-1])})") for c in _BOX_COMMANDS]
_UNIT = (r"(?:(?:square|sq\.?|cubic)\s*)?(?:units?|cm|mm|km|m|meters?|metres?|centimeters?|kilometers?"
         r"|inch(?:es)?|in|feet|foot|ft|yards?|miles?|mph|degrees?|radians?|dollars?|cents?|seconds?"
         r"|minutes?|hours?|days?|weeks?|months?|years?|grams?|kg|pounds?|lbs?|ounces?|liters?"
         r"|gallons?|percent)(?:\s*\^\s*\{?[23]\}?)?")
_AFTER_NUMBER = r"(?:(?<=[\d}])|(?<=\\pi))"  # where a unit may follow: 5, \frac{1}{2}, 2\pi
# Plural words after a number that are not a count of things: names of fractions and powers of ten, hedges, verbs.
_NOT_A_COUNT = (r"(?:halves|thirds|quarters|fourths|fifths|sixths|sevenths|eighths|ninths|tenths|hundredths|thousandths"
                r"|tens|hundreds|thousands|millions|billions|trillions|dozens|times|less|unless|plus|minus|was|has|does"
                r"|yes|is)\s*\}")
_REWRITES = [(re.compile(pattern), replacement) for pattern, replacement in [
    (r"(?<=\d)(?:\{,\}|,\\!|\\,)(?=\d{3}(?!\d))", ""),  # thousands, spelt unambiguously: 1{,}000, 1,\!000, 1\,000
    (r"(?<!\\)\\[!,;:> ]|\\(?:q?quad|displaystyle)(?![A-Za-z])|~", " "),  # spacing, not the \\ of a row
    (r"\\\$|\$", ""),  # math delimiters and dollar signs: \$18.90 -> 18.90
    (r"\\(?:left|right)(?:\.|(?![A-Za-z]))", ""),  # \left( 1, 2 \right) -> (1, 2); `\left.` shows nothing
    (r"\\langle(?![A-Za-z])", "("),  # a vector <1, 2> is the tuple (1, 2)
    (r"\\rangle(?![A-Za-z])", ")"),
    (r"\\(?:leq?|leqslant)(?![A-Za-z])|≤", "<="),
    (r"\\(?:geq?|geqslant)(?![A-Za-z])|≥", ">="),
    (r"\\[dtc]frac(?![A-Za-z])", r"\\frac"),
    (r"\\[dt]binom(?![A-Za-z])", r"\\binom"),
    (r"−", "-"),
    (r"π", r"\\pi "),
    (r"\\mathbb\s*(?:\{\s*R\s*\}|R(?![A-Za-z]))|\\text\s*\{\s*all\s+real\s+numbers\s*\}", r"(-\\infty,\\infty)"),
    (r"(?:(?:^|(?<=[,(\[]))\s*\+\s*)?(?:\\infty(?![A-Za-z])|∞)", r"\\infty "),  # [2, +\infty) -> [2, \infty)
    (r"\\varnothing(?![A-Za-z])|∅|\\\{\s*\\\}", r"\\emptyset "),  # and the set \{\} with nothing in it
    (r"(?<=\\begin\{)bmatrix\}|(?<=\\end\{)bmatrix\}", "pmatrix}"),  # brackets or parentheses: one matrix
    (r"(?:\^\s*\{?\s*\\circ\s*\}?|(?<=\d)\s*\\(?:circ|degree)(?![A-Za-z])|°)(?:\s*\\text\s*\{\s*[CF]\s*\})?",
     ""),  # 30^\circ, 30^{\circ}, 30\degree, 30^\circ\text{C} -> 30; not f \circ g
    (r"\\?%", ""),  # 50\% -> 50
    (r"\\(?:text|mbox|mathrm)\s*\{\s*(?:and|or)\s*\}\s*", ","),  # 2 \text{ or } 3: the list 2, 3 (which is not 2)
    (_AFTER_NUMBER + r"\s*\\(?:text|mbox|mathrm)\s*\{\s*" + _UNIT + r"\s*\}(?:\s*\^\s*\{?[23]\}?)?", ""),  # 5\text{ cm}^2
    (_AFTER_NUMBER + r"\s*\\(?:text|mbox|mathrm)\s*\{\s*(?!" + _NOT_A_COUNT + r")[a-z]{2,}s\s*\}(?=\s*(?:\.\s*)?$)",
     ""),  # a last plural word after a number, a count: 6 \text{ ways} -> 6; not 5 \text{ thousands}, 5 \text{ more}
    (r"\\(?:text|textbf|mbox|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1"),  # \text{(C)} -> (C)
    (r"(?<=[\d}])\s+" + _UNIT + r"\s*$", ""),  # bare trailing unit: 5 cm -> 5
    # and after pi, where a letter needs a space, so `2\pi m` is how 2 pi times m is written: not m, nor in (2\pi in)
    (r"(?<=\\pi)\s+(?!(?:m|in)(?:\s*\^\s*\{?[23]\}?)?\s*$)" + _UNIT + r"\s*$", ""),  # 2\pi meters -> 2\pi
]]
# x =, p(x) =, f^{-1}(x) =, \theta =, x \in
_NAME = re.compile(r"((?:[A-Za-z]|\\[A-Za-z]+)(?:\^\{?-1\}?(?=\s*\())?(?:\s*\(\s*[A-Za-z]\s*\))?)\s*(?:=|\\in(?=\s*(?:[\[(]|\\\{|\\emptyset)))\s*")
_NAMES = re.compile(r"(\([A-Za-z](?:,[A-Za-z])+\))=")  # (x,y)= in a normalised answer
_TURNED = re.compile(r"([^<>=]+)=([A-Za-z]|\\[A-Za-z]+)")  # 5=x, 2x+3=y in a normalised answer
_NAMED = re.compile(r"([A-Za-z])=(.+)")  # x=1, one item of a normalised list
_BASE = re.compile(r"([0-9A-Z]+)_\{?(\d{1,2})\}?")  # 1011_2, A3_{16}: digits in a base
_CHOICE = re.compile(r"\(([A-E])\)(.+)")  # (C)12: a normalised choice with its value
# Spaces go, except between two digits, which stay apart: `2 1/2` is not 21/2 (but `\log_2 3` is `\log_23`).
_SPACES = re.compile(r"(?<=\d)(?<![_^]\d)(\s+)(?=\d)|\s+")
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")  # not 0,100: the list 0, 100
_SHORTHANDS = [(re.compile(pattern), replacement) for pattern, replacement in [
    (r"\\sqrt(\w)", r"\\sqrt{\1}"),  # \sqrt2 -> \sqrt{2}
    (r"([_^])\{(\w)\}", r"\1\2"),  # x^{2} -> x^2, \log_{2} -> \log_2
    (r"\\frac(\d) ?(\d)", r"\\frac{\1}{\2}"),  # \frac12, \frac 1 2 -> \frac{1}{2}
    (r"\\frac(\d)(?=\{)", r"\\frac{\1}"),  # \frac1{2}
    (r"(\\frac\{(?:[^{}]|\{[^{}]*\})*\})(\d)", r"\1{\2}"),  # \frac{1}2, \frac{\sqrt{3}}2
    (r"^\(([A-E])\)$", r"\1"),  # multiple choice: (C) -> C
]]
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_MIXED = re.compile(r"(\d{1,9})\\frac\{(\d{1,9})\}\{(\d{1,9})\}")  # 2\frac{1}{4}: 9/4 when 1 < 4
_POWER = re.compile(r"\^(?:(\d)(?!\d)|\{([-+]?\d{1,3})\})")  # an integer exponent: x^3, x^{10}, x^{-1}; not x^10
_TIMES = re.compile(r"\\(?:cdot|times)(?!s)")
_PLUS_MINUS = re.compile(r"\\pm(?![A-Za-z])")
_MATRIX = re.compile(r"\\begin\{([pv]matrix)\}(.*)\\end\{\1\}")
_AND = re.compile(r"\\(?:text|mbox|mathrm)\s*\{\s*and\s*\}")
_INEQUALITY = re.compile(r"([A-Za-z])(<=|>=|<|>)(.+)")  # x>=3 -> x=[3,\infty)
_BETWEEN = re.compile(r"(.+?)(<=|<)([A-Za-z])(<=|<)(.+)")  # 2<=x<3 -> x=[2,3)
_BOX_SPACE = re.compile(r"[ \t]*")
# What may stand between boxes read together as one list: `$\boxed{2}$ and $\boxed{3}$`, `\boxed{2}, x = \boxed{3}`.
_BETWEEN_BOXES = re.compile(r"(?:[\s$,;]|\\[,;:!()\[\] ]|\\q?quad|\\text\s*\{\s*(?:and|or)\s*\}|and|or|[A-Za-z]\s*=)*")
MAX_BOXES = 10  # boxes read together at most; a longer run of boxes side by side is no answer
_BOX_BRACE = re.compile(r"\s*\{")  # LaTeX reads a newline before the argument as a space
_BOX_TOKEN = re.compile(r"(?:\w|[-+.(\[]|\\[A-Za-z])[^\s$]*")  # not `\boxed\;5`: an empty box, then 5
_ANSWER_PHRASES = ("answer is", "Answer is", "ANSWER IS")  # rfind, not lower(): lower() can shift indices
_SENTENCE_END = re.compile(r"\.(?:\s|$)")  # a period that ends a sentence, not the one in 3.5

# An exact value is a sum of terms c * sqrt(r) * monomial: c rational, r square-free, the monomial a sorted tuple
# of (symbol, power) pairs (\pi is a symbol, and so is a single-letter variable). A Value holds the sum's terms
# as sorted ((r, monomial), c) pairs with like terms merged, so that equal values are equal tuples; () is zero.
Term = tuple[Fraction, int, tuple]
Value = tuple
_ONE: Term = (Fraction(1), 1, ())


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
    """The final answer of a response: the content of its last box (a list with the boxes side by side before
    it), stripped; None if it has none.

    The last box is authoritative even when malformed, so an earlier draft box (or one quoted from
    the problem) cannot stand in for a truncated or empty final answer.
    """
    reversed_text = text[::-1]
    box = _last_box(reversed_text, 0, len(text))
    if not box:
        return _unboxed_answer(text) if allow_unboxed else None
    box = _outer_box(text, reversed_text, box)  # a box inside a box is the outer one
    answer = _box_content(text, len(text) - box.start())
    if answer is None or not normalize_answer(answer):
        return None  # an empty box is no answer (`\boxed{}`, `\boxed{\,}`): it must not beat the no-answer penalty
    answers = [answer.strip()]
    # Boxes side by side before it are one answer, a list: `$\boxed{2}$ and $\boxed{3}$` is `2, 3` (and a hedge
    # `\boxed{2} or \boxed{3}` is not 3). Words between boxes (`\boxed{2}, wait, \boxed{3}`) make them drafts.
    for _ in range(MAX_BOXES):
        if not (previous := _last_box(reversed_text, box.end(), MAX_ANSWER_CHARS + 100)):
            break
        start, end = len(text) - previous.start(), len(text) - box.end()  # the previous box's argument, this box
        brace = _BOX_BRACE.match(text, start)
        close = _closing_brace(text, brace.end() - 1) if brace else -1
        if not (0 <= close < end and _BETWEEN_BOXES.fullmatch(text, close + 1, end)
                and normalize_answer(content := text[brace.end():close])):
            break
        if content.strip() not in answers:  # the same box twice is one answer, wherever it repeats in the list
            answers.insert(0, content.strip())
        box = previous
    else:
        return None  # more boxes side by side than are read: the earliest must not drop out of the list silently
    if len(answers) == 2 and is_equiv(*answers):  # one answer in two forms: `\boxed{0.5} or \boxed{\frac12}`
        answers.pop(0)
    return ", ".join(answers)


def _outer_box(text: str, reversed_text: str, box: re.Match) -> re.Match:
    """The outermost box command whose braces hold the box command `box` (both matches in reversed_text), draft
    boxes between them or not (`\\boxed{2 \\text{ or } \\boxed{1}, no: \\boxed{3}}`: the first box); `box` if none
    does within MAX_ANSWER_CHARS."""
    end, outer, at = len(text) - box.end(), box, box.end()
    for _ in range(4 * MAX_BOXES):
        if not (previous := _last_box(reversed_text, at, box.end() + MAX_ANSWER_CHARS - at)):
            break
        brace = _BOX_BRACE.match(text, len(text) - previous.start())
        if brace and _closing_brace(text, brace.end() - 1) > end:
            outer = previous
        at = previous.end()
    return outer


def _last_box(reversed_text: str, start: int, window: int) -> re.Match | None:
    """The last box command that starts before reversed_text[start] (in the text read forwards) and ends within
    `window` characters of it, as a match in the reversed text; None if there is none."""
    boxes = [box for pattern in _BOXES_REVERSED if (box := pattern.search(reversed_text, start, start + window))]
    return min(boxes, key=lambda box: box.start(), default=None)


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
    either = not _AND.search(s)  # `x < -2 \text{ or } x > 3` is a union; with "and", an intersection
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
    intervals = [_interval(part) for part in _split_top(s, ",") or [s]]  # x<-2 \text{ or } x>3: a union
    if all(intervals) and len({name for name, _ in intervals}) == 1:
        if either or len(intervals) == 1:
            s = intervals[0][0] + "=" + "\\cup".join(interval for _, interval in intervals)
        elif len(intervals) == 2 and (both := _intersection(intervals[0][1], intervals[1][1])):
            s = intervals[0][0] + "=" + both  # x>-2 \text{ and } x<3 -> x=(-2,3)
    elif (turned := _TURNED.fullmatch(s)) and not _NAME.match(s):
        s = turned.group(2) + "=" + turned.group(1)  # 5=x -> x=5, 2x+3=y -> y=2x+3
    return s


def _intersection(a: str, b: str) -> str | None:
    """The interval two half-lines bound from both sides, `(-2,\\infty)` and `(-\\infty,3)` -> `(-2,3)`; else None."""
    low, high = (a, b) if a.endswith(",\\infty)") else (b, a)
    if low.endswith(",\\infty)") and high.startswith("(-\\infty,"):
        return low.removesuffix(",\\infty)") + high.removeprefix("(-\\infty")
    return None


def _interval(s: str) -> tuple[str, str] | None:
    """(variable, interval) of an inequality in one variable: 2<=x<3 -> x, [2,3); x>=3 -> x, [3,\\infty)."""
    if between := _BETWEEN.fullmatch(s):
        low, low_op, name, high_op, high = between.groups()
        return name, f"{'[' if low_op == '<=' else '('}{low},{high}{']' if high_op == '<=' else ')'}"
    if inequality := _INEQUALITY.fullmatch(s):
        name, op, bound = inequality.groups()
        return name, (f"[{bound},\\infty)" if op == ">=" else f"({bound},\\infty)" if op == ">" else
                      f"(-\\infty,{bound}]" if op == "<=" else f"(-\\infty,{bound})")
    return None


def _cuts(s: str, seps: str) -> list[int] | None:
    """The indices of the characters of `seps` outside brackets and braces; None if the brackets do not nest."""
    cuts, depth = [], 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0 and c in seps:
            cuts.append(i)
    return cuts if depth == 0 else None


def _split_top(s: str, sep: str) -> list[str] | None:
    """Split s at `sep` outside brackets and braces; None if the brackets do not nest."""
    if (cuts := _cuts(s, sep)) is None:
        return None
    ends = [-1] + cuts + [len(s)]
    return [s[a + 1:b] for a, b in zip(ends, ends[1:])]


def _term(c: Fraction, r: int = 1, monomial: tuple = ()) -> Term | None:
    """The term c * sqrt(r) * monomial with the square factors of r moved into c (sqrt(8) = 2 sqrt(2)), so
    that equal terms are equal tuples; None if r is past MAX_RADICAND."""
    if c == 0 or r == 0:
        return Fraction(0), 1, ()
    if r > MAX_RADICAND:
        return None
    for f in range(math.isqrt(r), 1, -1):
        if r % (f * f) == 0:
            return c * f, r // (f * f), monomial
    return c, r, monomial


def _monomial(a: tuple, b: tuple, sign: int = 1) -> tuple | None:
    """The monomial a * b (sign 1) or a / b (sign -1), as sorted (symbol, power) pairs; None past MAX_POWER."""
    powers = Counter(dict(a))
    for symbol, power in b:
        powers[symbol] += sign * power
    if any(abs(power) > MAX_POWER for power in powers.values()):
        return None
    return tuple(sorted((symbol, power) for symbol, power in powers.items() if power))


def _times(a: Term | None, b: Term | None) -> Term | None:
    if a is None or b is None or (monomial := _monomial(a[2], b[2])) is None:
        return None
    return _term(a[0] * b[0], a[1] * b[1], monomial)


def _over(a: Term | None, b: Term | None) -> Term | None:
    """a / b, rationalising the denominator: 1 / sqrt(r) = sqrt(r) / r."""
    if a is None or b is None or b[0] == 0 or (monomial := _monomial(a[2], b[2], -1)) is None:
        return None
    return _term(a[0] / (b[0] * b[1]), a[1] * b[1], monomial)


def _power(a: Term | None, n: int) -> Term | None:
    """a ** n for an integer n, while the numbers stay below POWER_BITS bits."""
    if a is None or abs(n) > MAX_POWER or max(a[0].numerator.bit_length(), a[0].denominator.bit_length()) * abs(n) > POWER_BITS:
        return None
    c, r, monomial = a
    m = abs(n)
    power = _term(c ** m * r ** (m // 2), r if m % 2 else 1, tuple((symbol, p * m) for symbol, p in monomial))
    return power if n >= 0 else _over(_ONE, power)


def _sum(terms: list[Term | None]) -> Value | None:
    """The sum of the terms, like terms merged (1 + sqrt(3) + 1 = 2 + sqrt(3)); None if a term is None."""
    total: dict = {}
    for term in terms:
        if term is None:
            return None
        c, r, monomial = term
        total[r, monomial] = total.get((r, monomial), 0) + c
    return tuple(sorted((key, c) for key, c in total.items() if c))


def _single(value: Value | None) -> Term | None:
    """The one term of a value (0 for the empty sum); None for a sum of several terms."""
    if value is None or len(value) > 1:
        return None
    return next(((c, r, monomial) for (r, monomial), c in value), (Fraction(0), 1, ()))


def _split_terms(s: str) -> list[tuple[int, str]] | None:
    """s cut at its top-level + and - signs into (sign, term) pairs; None if a term is empty or the brackets
    do not nest. A sign right after ^ or _ is an exponent's or an index's, not a cut."""
    signed = int(s[:1] in "+-")  # a leading sign is the first term's, not a cut
    if (cuts := _cuts(s, "+-")) is None:
        return None
    cuts = [i for i in cuts if i >= signed and s[i - 1] not in "^_"]
    ends = [signed - 1] + cuts + [len(s)]  # each term starts after its sign, s[a] (none before the first: a = -1)
    parts = [(-1 if s[a:a + 1] == "-" else 1, s[a + 1:b]) for a, b in zip(ends, ends[1:])]
    return parts if all(term for _, term in parts) else None


def _group_end(s: str, i: int) -> int:
    """Index of the `)` that closes the `(` at s[i], counting all three kinds of bracket; -1 if none does."""
    depth = 0
    for j in range(i, len(s)):
        depth += (s[j] in "([{") - (s[j] in ")]}")
        if depth == 0:
            return j if s[j] == ")" else -1
    return -1


def _value(s: str, depth: int = 0) -> Value | None:
    r"""Exact value of a normalised sum of products, like `1-\frac{\sqrt{3}}{2}x` or `3\cdot10^5`; else None."""
    if depth > MAX_DEPTH or not s or (terms := _split_terms(s)) is None:
        return None
    out: list[Term | None] = []
    for sign, text in terms:
        halves = _split_top(text, "/")
        if halves is None or len(halves) > 2:
            return None
        value = _product(halves[0], depth)
        if len(halves) == 2:  # a/b
            value = _quotient(value, _product(halves[1], depth))
        if value is None:
            return None
        out += [_times((Fraction(sign), 1, ()), t) for t in _terms(value)]
    if len({term[1:] for term in out if term is not None}) < len(out):
        return None  # like terms, as in 90-45 or 1+\sqrt{2}+\sqrt{2}: arithmetic left undone, not an answer
    return _sum(out)


def _terms(value: Value) -> list[Term]:
    return [(c, r, monomial) for (r, monomial), c in value]


def _product(s: str, depth: int) -> Value | None:
    r"""Exact value of factors written side by side or joined by `\cdot` / `\times`, each with an optional
    integer power, if the product is written out (see _written_out); a sum in brackets may stand alone but is
    not multiplied out: `2(x+1)` is not `2x+2`."""
    factors, i = [], 0  # (value, whether it is a power of ten)
    while i < len(s):
        if factors and (times := _TIMES.match(s, i)):
            i = times.end()
        factor, i = _factor(s, i, depth)
        ten = False
        if (term := _single(factor)) is not None and (power := _POWER.match(s, i)):
            ten = term == (Fraction(10), 1, ())
            variable = term[:2] == (1, 1) and len(term[2]) == 1 and term[2][0][1] == 1  # x or \pi
            factor = _sum([_power(term, int(power.group(1) or power.group(2)))]) if ten or variable else None
            i = power.end()
        if factor is None:
            return None
        factors.append((factor, ten))
    if len(factors) <= 1:
        return factors[0][0] if factors else None
    terms = [_single(factor) for factor, _ in factors]
    if None in terms or not _written_out(terms, [ten for _, ten in factors]):
        return None
    product: Term | None = _ONE
    for term in terms:
        product = _times(product, term)
    return None if product is None else _sum([product])


def _written_out(terms: list[Term], tens: list[bool]) -> bool:
    r"""Whether a product is an answer rather than a computation a policy could copy from the problem: at most
    one factor with a coefficient (`2\sqrt{3}`, not `(2\sqrt{3})(3\sqrt{3})` or `17 \cdot 23`), one radical (not
    `\sqrt{8}\sqrt{50}`), one power of ten (`3 \times 10^5`, which has no coefficient of its own), and no variable
    in two factors (not `x^2 \cdot x^3`)."""
    coefficients = sum(abs(term[0]) != 1 for term, ten in zip(terms, tens) if not ten)
    symbols = [symbol for term in terms for symbol, _ in term[2]]
    return coefficients <= 1 and sum(term[1] != 1 for term in terms) <= 1 and sum(tens) <= 1 \
        and len(symbols) == len(set(symbols))


def _quotient(numerator: Value | None, denominator: Value | None) -> Value | None:
    r"""numerator / denominator, where that is a written-out fraction: the denominator is one term that shares
    no variable with the numerator (not `\frac{15x^3}{5x}`), and a sum goes only over an integer that leaves
    it in lowest terms (`\frac{1+\sqrt{5}}{2}`, not `\frac{4x+6}{2}`). A number over a number is reduced:
    `\frac{6}{8}` is 3/4."""
    d = _single(denominator)
    if numerator is None or d is None:
        return None
    terms = _terms(numerator)
    if {symbol for symbol, _ in d[2]} & {symbol for term in terms for symbol, _ in term[2]}:
        return None
    if len(terms) > 1 and not (d[1:] == (1, ()) and d[0].denominator == 1 and all(t[0].denominator == 1 for t in terms)
                               and math.gcd(d[0].numerator, *(t[0].numerator for t in terms)) == 1):
        return None
    return _sum([_over(term, d) for term in terms])


def _factor(s: str, i: int, depth: int) -> tuple[Value | None, int]:
    r"""The factor that starts at s[i] and the index after it: a number, `\pi`, a
    single-letter variable, `\sqrt{..}`, `\frac{..}{..}`, or a bracketed `(..)` / `{..}`; (None, i) if none."""
    if i >= len(s):
        return None, i
    if (mixed := _MIXED.match(s, i)) and 0 < int(mixed.group(2)) < int(mixed.group(3)):
        whole, numerator, denominator = map(int, mixed.groups())
        return _sum([_term(whole + Fraction(numerator, denominator))]), mixed.end()
    if number := _NUMBER.match(s, i):
        if len(number.group()) > MAX_DIGITS or s.startswith("\\frac", number.end()):
            return None, i  # huge, or a number before a fraction that is no mixed number: 2\frac{3}{2}, 2.5\frac{1}{2}
        return _sum([_term(Fraction(number.group()))]), number.end()
    if s.startswith("\\pi", i):
        return _sum([(Fraction(1), 1, (("\\pi", 1),))]), i + 3
    if s[i].isascii() and s[i].isalpha() and not s[i + 1:i + 2].isalpha() and s[i + 1:i + 2] != "(":
        return _sum([(Fraction(1), 1, ((s[i], 1),))]), i + 1  # x; not xy (a word?) nor f(x) (a function?)
    if s.startswith("\\sqrt{", i) and (end := _closing_brace(s, i + 5)) >= 0:
        radicand = _single(_value(s[i + 6:end], depth + 1))
        if radicand is None or radicand[1:] != (1, ()) or radicand[0] < 0:
            return None, i
        root = _term(Fraction(1, radicand[0].denominator), radicand[0].numerator * radicand[0].denominator)
        return _sum([root]), end + 1
    if s.startswith("\\frac{", i) and (mid := _closing_brace(s, i + 5)) >= 0 \
            and s.startswith("{", mid + 1) and (end := _closing_brace(s, mid + 1)) >= 0:
        return _quotient(_value(s[i + 6:mid], depth + 1), _value(s[mid + 2:end], depth + 1)), end + 1
    end = _group_end(s, i) if s[i] == "(" else _closing_brace(s, i) if s[i] == "{" else -1
    if end > i:
        return _value(s[i + 1:end], depth + 1), end + 1
    return None, i


# --------------------------------------------------------------------------------------------------
# Equivalence and reward


def _signatures(s: str) -> tuple[tuple, tuple, tuple, int]:
    """Hashable summaries of a normalised answer: (with the variables its items name, without them, without
    them in written order, how many variables its items name); see _same.

    Tuples, intervals and matrices keep order and their brackets; bare lists and sets are multisets, and so
    are `a \\pm b` (the list a+b, a-b) and a union of intervals. Each element compares as _key says.
    """
    head = _NAME.match(s) or _NAMES.match(s)  # the name of a whole tuple or set: `x = (1, 2)`, `(x, y) = (1, 2)`
    rest, whole = (s[head.end():], head.group(1)) if head else (s, "")
    brackets, items, lead = "", [s], ""
    if tuple_ := _tuple(rest):
        (brackets, items), lead = tuple_, whole
    elif rest.startswith("\\{") and rest.endswith("\\}") and len(rest) >= 4 and (parts := _split_top(rest[2:-2], ",")):
        items, lead = parts, whole
    elif len(parts := rest.split("\\cup")) >= 2 and all(_tuple(part) for part in parts):  # a union of intervals
        brackets, items, lead = "\\cup", parts, whole
    elif (matrix := _MATRIX.fullmatch(rest)) and (cells := _cells(matrix.group(2))):
        brackets, items, lead = f"{matrix.group(1)} {len(cells)}x{len(cells[0])}", [c for row in cells for c in row], whole
    elif len(parts := _split_top(s, ",") or []) >= 2:  # a list: each item may name its own variable
        items = parts
    elif len(_PLUS_MINUS.findall(s)) == 1:  # 1 \pm \sqrt{2}: the two answers 1+\sqrt{2}, 1-\sqrt{2}
        items = [_PLUS_MINUS.sub(sign, s) for sign in "+-"]
    named = [_NAME.match(item) for item in items]
    names = [name.group(1) if name else "" for name in named]
    items = [item[name.end():] if name else item for item, name in zip(items, named)]  # x=1 -> 1
    if not brackets and len(items) >= 2 and names[0] and set(names[1:]) <= {"", names[0]}:
        lead, names = names[0], [""] * len(items)  # x = 1, 2 and x = 1, x = 2: one variable's values, x \in \{1, 2\}
    keys = [_key(item) for item in items]
    ordered = brackets and brackets != "\\cup"
    summary = lambda keys: (brackets, tuple(keys) if ordered else frozenset(Counter(keys).items()))
    return (lead, summary(zip(names, keys))), summary(keys), (brackets, tuple(keys)), len(set(names) - {""})


def _tuple(s: str) -> tuple[str, list[str]] | None:
    """(brackets, elements) of a tuple or an interval: `(a, b)`, `[a, b)`; None for anything else."""
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and len(parts := _split_top(s[1:-1], ",") or []) >= 2:
        return s[0] + s[-1], parts
    return None


def _cells(body: str) -> list[list[str]] | None:
    """The rows of a matrix's body `a&b\\\\c&d`, as lists of cells; None if the rows differ in length."""
    rows = [row.split("&") for row in body.removesuffix("\\\\").split("\\\\")]
    return rows if len({len(row) for row in rows}) == 1 else None


def _key(item: str, inner: bool = False):
    """How one element compares: by its exact value; else, for a tuple such as one point of a list of points
    (but not a tuple inside that), by its brackets and its elements' keys; else by its text."""
    if (value := _value(item)) is not None:
        return value
    if not inner and (tuple_ := _tuple(item)):
        return tuple_[0], tuple(_key(x, inner=True) for x in tuple_[1])
    return item


def _math_verify_equiv(pred: str, gold: str) -> bool:
    """The optional `math-verify` grader (sympy-based, numeric tolerance: 0.333333 == 1/3 there)."""
    try:
        from math_verify import parse, verify
    except ImportError:
        message = "backend='math_verify' needs the math-verify package: pip install math-verify"
        raise ImportError(message) from None
    return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))


def _as_point(s: str) -> str | None:
    """A list of values named by single letters in alphabetical order, also read as a point: `x=1,y=2` ->
    `(x,y)=(1,2)`, which equals `(1,2)`. Another order (`y=2,x=1`) stays a list only. None if s is not one."""
    named = [_NAMED.fullmatch(item) for item in _split_top(s, ",") or []]
    if len(named) < 2 or not all(named) or any(m.group(1) >= n.group(1) for m, n in zip(named, named[1:])):
        return None
    return f"({','.join(m.group(1) for m in named)})=({','.join(m.group(2) for m in named)})"


def _choice(s: str) -> str | None:
    """The letter of a choice given with its value, `(C)12` -> `C`: a value that is a number (no letter but in
    a command such as \\frac, \\sqrt, \\pi), so that `(C) or D`, `(C)/D` and `(C)\\text{is wrong}` are not C."""
    m = _CHOICE.fullmatch(s)
    if m and not re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", m.group(2))) and _value(m.group(2)) is not None:
        return m.group(1)
    return None


def _digits(s: str) -> str | None:
    """The digits of a number written in a base, `1011_2` -> `1011`; None if s is not one (`1012_2`, `x_1`)."""
    m = _BASE.fullmatch(s)
    if m and 2 <= (base := int(m.group(2))) <= 36 and all(int(digit, 36) < base for digit in m.group(1)) \
            and not m.group(1).isalpha():  # A_2 is a name
        return m.group(1)
    return None


def _same(a: str, b: str) -> bool:
    """is_equiv on two normalised answers."""
    if a == b:
        return True
    if a.isalpha() and b.isalpha() and len(a) > 1 and len(b) > 1:  # words: \text{Odd} is odd; but the variable a is not A
        return a.casefold() == b.casefold()
    (named_a, bare_a, order_a, vars_a), (named_b, bare_b, order_b, vars_b) = _signatures(a), _signatures(b)
    if named_a == named_b:
        return True
    if (named_a[0] or vars_a) and (named_b[0] or vars_b):  # variables named on both sides must agree: x = 5 != y = 5
        return False
    # One side naming none compares values alone (`x = 5` == `5`, `x = 1, x = 2` == `2, 1`); in written order
    # against items naming different variables: `x = 1, y = 2` is `1, 2`, not `2, 1`.
    return order_a == order_b if max(vars_a, vars_b) >= 2 else bare_a == bare_b


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
    if _same(a, b) or a == _choice(b) or b == _choice(a):  # the choice alone against the choice with its value
        return True
    if a == _digits(b) or b == _digits(a):  # 1011 == 1011_2
        return True
    point_a, point_b = _as_point(a), _as_point(b)
    return bool(point_a or point_b) and _same(point_a or a, point_b or b)


def grade(response: str, gold: str, finished: bool = True) -> str:
    """ "correct", "wrong" (a boxed answer that is not equal) or "no_answer": the one rule of correctness
    used by training, evaluation and selection. A response that did not finish (cut off at the length
    limit) has no final answer, whatever its text holds."""
    pred = extract_answer(response) if finished else None
    if pred is None:
        return "no_answer"
    return "correct" if is_equiv(pred, gold) else "wrong"


def compute_reward(response: str, gold: str, correct: float = REWARDS["correct"], wrong: float = REWARDS["wrong"],
                   no_answer: float = REWARDS["no_answer"], finished: bool = True) -> float:
    """The paper's terminal reward: `correct` / `wrong` (boxed but not equal) / `no_answer` (no box)."""
    return {"correct": correct, "wrong": wrong, "no_answer": no_answer}[grade(response, gold, finished)]


# --------------------------------------------------------------------------------------------------
# Command line


def _score_jsonl(args: argparse.Namespace) -> None:
    """Score every record of a JSONL file and print one summary line (plus one line per record with -v)."""
    counts = Counter()
    for where, record in read_jsonl(args.jsonl, "responses file", parse_float=Decimal):  # 1e-05 as training reads it
        if not isinstance(record, dict) or args.response_key not in record or args.gold_key not in record:
            raise InputError(f"{where}: record lacks key {args.response_key!r} or {args.gold_key!r}")
        response, gold = record[args.response_key], record[args.gold_key]
        if not isinstance(response, str):
            raise InputError(f"{where}: {args.response_key!r} is not text")
        outcome = grade(response, decimal_text(gold))
        counts[outcome] += 1
        if args.verbose:
            print(f"{where}\t{outcome}\t{extract_answer(response)!r}\t{gold!r}")
    n = sum(counts.values())
    if n == 0:
        raise InputError(f"{args.jsonl}: no records to score")
    mean = sum(REWARDS[k] * counts[k] for k in REWARDS) / max(n, 1)
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
