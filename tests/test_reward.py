"""Tests for reward.py: the equivalence table, extraction, the paper's reward values, reward hacking,
and (with hypothesis) that nothing raises or slows down on arbitrary or adversarial text."""

import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from reward import MAX_ANSWER_CHARS, MAX_BOXES, compute_reward, extract_answer, is_equiv, normalize_answer

REWARD_PY = Path(__file__).resolve().parent.parent / "reward.py"

EQUIVALENT = [
    ("5", "5"),
    ("1,000", "1000"),  # thousands separators
    ("1{,}000", "1000"),
    ("1,\\!000", "1000"),
    ("1\\,000", "1,000"),
    ("10,125.5", "10125.5"),
    ("\\dfrac{3}{4}", "3/4"),  # fractions in every spelling
    ("\\tfrac{3}{4}", "\\frac{3}{4}"),
    ("\\frac12", "\\frac{1}{2}"),
    ("\\frac{6}{8}", "\\frac34"),
    ("0.5", "1/2"),
    ("0.5", "\\frac{1}{2}"),
    (".5", "0.5"),
    ("5.0", "5"),
    ("\\frac{255}{4}", "63.75"),
    ("-3", "-3"),  # signs
    ("+3", "3"),
    ("-0", "0"),
    ("-\\frac{1}{2}", "\\frac{-1}{2}"),
    ("-\\frac{1}{2}", "-0.5"),
    ("50\\%", "50"),  # percent sign dropped, value kept
    ("12%", "12\\%"),
    ("\\$18.90", "18.9"),
    ("5 \\text{ cm}", "5"),  # units
    ("5\\text{ cm}^2", "5"),
    ("5 \\mbox{ inches}", "5"),
    ("7 \\text{ square units}", "7"),
    ("5 cm", "5"),
    ("\\frac{1}{2} cm", "0.5"),  # a bare unit after a fraction's brace
    ("2\\pi meters", "2\\pi"),  # and after pi
    ("4\\pi square units", "4\\pi"),
    ("2\\pi cm", "2\\pi"),
    ("30^\\circ", "30"),  # degrees
    ("30^{\\circ}", "30"),
    ("30°", "30"),
    ("90 degrees", "90"),
    ("\\left( 1, 2 \\right)", "(1,2)"),  # tuples and intervals
    ("(3, -1)", "(3,-1)"),
    ("(\\frac{1}{2}, 3)", "(0.5, 3)"),
    ("[1, 2)", "[1,2)"),
    ("(-\\infty, 3]", "(-\\infty,3]"),
    ("\\sqrt2", "\\sqrt{2}"),  # radicals
    ("2\\sqrt3", "2\\sqrt{3}"),
    ("\\sqrt{8}", "2\\sqrt{2}"),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"),
    ("\\sqrt{\\frac{1}{4}}", "\\frac12"),
    ("2\\pi", "2 \\pi"),  # pi
    ("\\frac{\\pi}{2}", "\\pi/2"),
    ("\\frac{3\\pi}{4}", "\\frac{3}{4}\\pi"),
    ("x = 5", "5"),  # layout
    ("y=-2", "-2"),
    ("5.", "5"),
    ("$5$", "5"),
    ("\\displaystyle\\frac{1}{2}", "0.5"),
    ("\\text{(C)}", "C"),
    ("\\textbf{(C)}", "\\text{(C)}"),
    ("x^2+1", "x^2 + 1"),  # no algebra, but equal text is equal
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("1, 2", "2, 1"),  # a list of solutions is a multiset
    ("\\{1, 2\\}", "1,2"),
    ("\\left\\{ 2, 1 \\right\\}", "\\{1,2\\}"),
    ("x = 1, x = 2", "1, 2"),  # a side that names no variable compares values
    ("x = 1, x = 2", "x = 2, x = 1"),
    ("x = (1, 2)", "(1, 2)"),
    ("p(x) = x^2 + 1", "x^2+1"),
    ("\\theta = 30^\\circ", "30"),
    ("x^{2}+1", "x^2+1"),  # braces around a one-character exponent or index
    ("\\log_{2} 3", "\\log_2 3"),
    ("[2, +\\infty)", "[2,\\infty)"),  # notation
    ("(-∞, 3]", "(-\\infty, 3]"),
    ("\\varnothing", "\\emptyset"),
    ("\\cfrac{1}{2}", "0.5"),
    ("\\begin{bmatrix} 1 \\\\ -2 \\end{bmatrix}", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}"),
    ("\\left. 5 \\right.", "5"),  # \left. and \right. are invisible delimiters
    ("\\boxed{\\frac{1}{2}}", "0.5"),  # a gold answer stored still boxed
    ("\\sqrt{3}+1", "1+\\sqrt{3}"),  # sums in any order
    ("\\dfrac{\\sqrt{5}-1}{2}", "\\frac{-1+\\sqrt{5}}{2}"),
    ("\\frac{1}{2}+\\frac{\\sqrt{3}}{2}", "\\frac{1+\\sqrt3}{2}"),
    ("1+x^2", "x^2+1"),  # single-letter variables
    ("\\frac{1}{2}x", "\\frac{x}{2}"),
    ("x^2y", "y \\cdot x^2"),
    ("2\\cdot\\sqrt{3}", "2\\sqrt{3}"),  # \cdot and \times
    ("2 \\times \\sqrt{3}", "\\sqrt{3}\\cdot 2"),
    ("3 \\times 10^5", "300{,}000"),  # scientific notation
    ("1.5\\cdot 10^{-3}", "0.0015"),
    ("\\pi^{-1}", "\\frac{1}{\\pi}"),
    ("(1/2)", "\\frac{1}{2}"),  # brackets around a value
    ("-(1/2)", "-0.5"),
    ("{5}", "5"),
    ("1/(2\\pi)", "\\frac{1}{2\\pi}"),
    ("\\frac 1 2", "\\frac12"),
    ("\\text{Odd}", "\\text{odd}"),  # words ignore case
    ("\\text{No solution}", "no solution"),
    ("3 \\text{ hrs}", "3"),  # one last word after a number
    ("6 \\text{ ways}.", "6"),
    ("15 \\text{ sq. units}", "15"),
    ("2\\pi \\text{ cm}", "2\\pi"),
    ("45^{\\circ}\\text{C}", "45"),
    ("\\frac{x+3}{2}", "\\frac{x}{2}+\\frac{3}{2}"),
    ("\\frac{2+2\\sqrt{3}}{3}", "\\frac{2}{3}+\\frac{2\\sqrt{3}}{3}"),  # lowest terms: gcd(2, 2, 3) is 1
    ("x = -2 \\text{ or } x = 3", "-2, 3"),  # `or` and `and` between answers make a list
    ("2 \\text{ and } 3", "3, 2"),
    ("1 \\pm \\sqrt{2}", "1-\\sqrt{2}, 1+\\sqrt{2}"),  # \pm is the list of both
    ("\\pm 2", "2, -2"),
    ("x \\in [1,5)", "[1,5)"),  # inequalities and \in are intervals
    ("x \\ge 3", "[3,\\infty)"),
    ("x \\ge 3", "x \\in [3, \\infty)"),
    ("x > 5", "(5, \\infty)"),
    ("x \\leq 2", "(-\\infty, 2]"),
    ("2 \\le x < 3", "[2,3)"),
    ("\\mathbb{R}", "(-\\infty,\\infty)"),
    ("\\text{all real numbers}", "(-\\infty, \\infty)"),
    ("\\{\\}", "\\emptyset"),
    ("\\langle 1, 2 \\rangle", "(1,2)"),  # a vector
    ("(0.5, 1), (3, 4)", "(3,4),(\\frac12,1)"),  # a list of points
    ("\\begin{pmatrix} 1/2 \\\\ -2 \\end{pmatrix}", "\\begin{pmatrix}\\frac{1}{2}\\\\-2\\end{pmatrix}"),  # matrices by entry
    ("\\begin{pmatrix} 0.5 & 1 \\\\ 2 & 3 \\end{pmatrix}", "\\begin{bmatrix}\\frac12&1\\\\2&3\\end{bmatrix}"),
    ("(C)\\ 12", "\\text{(C)}"),  # a choice with its value
    ("x = 1, y = 2", "(1, 2)"),  # named in alphabetical order: also a point
    ("(a, b) = (1, 2)", "(1,2)"),
    ("(2,3) \\cup [\\frac12,1)", "x \\in [0.5,1) \\cup (2,3)"),  # unions in any order
    ("\\frac{\\sqrt3}2", "\\frac{\\sqrt{3}}{2}"),
    ("\\{1, 1, 2\\}", "1,1,2"),  # a multiset keeps its repeats
    ("(-2,3)", "-2<x<3"),
    ("y = 3 + 2x", "y=2x+3"),
    ("x > -2 \\text{ and } x < 3", "-2 < x < 3"),  # "and" between two half-lines: their intersection
    ("x \\ge 1 \\text{ and } x < 3", "[1, 3)"),
    ("5 = x", "x = 5"),  # an equation written the other way round
    ("2x+3 = y", "y = 2x + 3"),
    ("\\frac{3}{4} = x", "0.75"),
    ("2\\frac{1}{4}", "\\frac{9}{4}"),  # mixed numbers
    ("137 \\frac{1}{2}", "137.5"),
    ("-2\\frac14", "-2.25"),
    ("0, 100", "0,100"),  # a list, not a thousands separator: no number starts with 0,
    ("1011", "1011_2"),  # a base subscript against the same digits without it
    ("A3", "A3_{16}"),
    ("f^{-1}(x) = \\frac{x-1}{2}", "\\frac{x-1}{2}"),  # an inverse function's name
]

NOT_EQUIVALENT = [
    ("\\frac{\\pi}{2} + 2\\pi m", "\\frac{\\pi}{2} + 2\\pi"),  # after pi, m is an integer more often than metres
    ("2\\pi m", "2\\pi"),
    ("2\\pi in", "2\\pi"),
    ("\\pi", "\\pi m^2"),  # a variable squared, not square metres
    ("2\\pi\\,m", "2\\pi"),
    ("1/3", "0.333"),  # exact: no float tolerance
    ("0.333", "\\frac{1}{3}"),
    ("1.4142", "\\sqrt{2}"),
    ("3.14159", "\\pi"),
    ("50\\%", "0.5"),  # documented choice: the percent sign is dropped, not divided out
    ("1, 2", "1"),  # several candidates are not one answer
    ("1, 2, 3, 4", "2"),
    ("(1, 2)", "1, 2"),  # a point is not a list of solutions
    ("(1, 2)", "(2, 1)"),  # tuples are ordered
    ("(1, 2, 3)", "(1, 2)"),
    ("[1, 2)", "(1, 2)"),  # interval bracket types must match
    ("[1, 2]", "[1, 2)"),
    ("1, 234", "1234"),  # spaced: a list, not a thousands separator
    ("1,00", "100"),
    ("2", "-2"),
    ("5", "50"),
    ("15", "5"),  # no substring credit
    ("5x", "5"),
    ("\\sqrt{2}", "\\sqrt{3}"),
    ("2\\pi", "\\pi"),
    ("\\frac{1}{2}", "\\frac{2}{1}"),
    ("2\\frac{1}{2}", "1"),  # a mixed number is not read as a product
    ("2 \\text{ or } 3", "2"),  # hedges are not unit words
    ("2 or 3", "2"),
    ("\\pm 1", "1"),
    ("", "5"),
    (None, "5"),
    ("\\text{}", "5"),
    ("+", "1"),
    ("5", ""),
    ("\\left.5\\right.", "0.5"),  # not the decimal .5
    ("x = 1, x = 2", "1"),
    ("x = 3", "y = 3"),  # named on both sides: the names must agree
    ("x = 1, y = 2", "x = 2, y = 1"),
    ("x = 2, b = 3", "a = 2, b = 3"),
    ("(y = 1, x = 2)", "(x = 1, y = 2)"),
    ("x = (1, 2)", "y = (1, 2)"),
    ("2 1/2", "\\frac{21}{2}"),  # a space between digits is not nothing
    ("1 \\, 5", "15"),
    ("1 0", "10"),
    ("3\\ 1/3", "\\frac{31}{3}"),
    ("2~1/2", "10.5"),
    ("f \\circ g", "fg"),  # \circ is a degree sign only after a number
    ("1+\\infty", "1\\infty"),  # a plus sign goes only where an interval's end is
    ("\\begin{vmatrix} 1 \\end{vmatrix}", "\\begin{pmatrix} 1 \\end{pmatrix}"),  # a determinant
    ("\\boxed{5}, 6", "5"),  # a box inside an answer is not unwrapped
    ("90-45", "45"),  # arithmetic left undone: a policy could copy the problem's own expression
    ("2+3", "5"),
    ("\\frac{1}{2}+\\frac{1}{3}", "\\frac{5}{6}"),
    ("\\sqrt{2}+\\sqrt{2}", "2\\sqrt{2}"),
    ("17 \\cdot 23", "391"),
    ("2(3)", "6"),
    ("2^{10}", "1024"),
    ("\\sqrt{3}^2", "3"),
    ("(2x)^2", "4x^2"),
    ("2(x+1)", "2x+2"),  # factored and expanded forms differ
    ("(x+1)^2", "x^2+2x+1"),
    ("1-\\sqrt{3}", "1+\\sqrt{3}"),
    ("\\sqrt{3}-1", "1-\\sqrt{3}"),
    ("xy", "yx"),  # letters side by side are a word, not a product
    ("f(x)", "xf"),
    ("a", "A"),  # a single letter keeps its case
    ("5 \\text{ more}", "5"),  # hedges and sentences after a number stay
    ("5 \\text{ or more}", "5"),
    ("3 \\text{ is impossible}", "3"),
    ("\\pm 2", "2"),
    ("x > 5", "[5,\\infty)"),
    ("0.\\overline{3}", "0.3"),
    ("0.\\overline{36}", "\\frac{4}{11}"),  # "express 0.\\overline{36} as a fraction" is not solved by copying it
    ("17(23\\pi)", "391\\pi"),  # a product has one coefficient, one radical, one power of ten at most
    ("(2\\sqrt{3})(3\\sqrt{3})", "18"),
    ("17x \\cdot \\frac{23}{x}", "391"),
    ("(3x)(4x^2)", "12x^3"),
    ("\\sqrt{8} \\times \\sqrt{50}", "20"),
    ("\\sqrt{2}\\sqrt{2}", "2"),
    ("10^3 \\cdot 10^2", "100000"),
    ("x^2 \\cdot x^3", "x^5"),  # and no variable in two factors
    ("\\frac{15x^3}{5x}", "3x^2"),  # a fraction cancels no variable
    ("\\frac{4x+6}{2}", "2x+3"),  # and a sum goes only over an integer, in lowest terms
    ("\\frac{x+1}{1/2}", "2x+2"),
    ("x^10", "0"),  # a bare exponent is one digit: x^10 has no value
    ("/", "1"),  # an empty product has no value
    ("5/", "5"),
    ("5 \\text{ squared}", "5"),  # only a plural count word goes after a number
    ("5 \\text{ thousands}", "5"),
    ("5 \\text{ halves}", "5"),
    ("5 \\text{ More}", "5"),
    ("5\\text{i}", "5"),
    ("y \\ge 3", "x \\ge 3"),  # an inequality keeps its variable's name
    ("x \\in 5", "5"),  # \\in names a variable only before a set
    ("ß", "ss"),  # case folding that changes a word's length
    ("ss", "ß"),
    ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),  # shape counts
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}"),
    ("(C)(A)", "(C)"),  # two choices are not one
    ("(C) \\text{ or } (A)", "(C)"),
    ("(C), 5", "(C)"),
    ("(C) or D", "\\text{(C)}"),  # a choice's value is a number, not a hedge
    ("(C)/D", "(C)"),
    ("(C)D", "(C)"),
    ("(C) 12 \\text{ or } D", "(C)"),
    ("(C) \\text{ is wrong}", "(C)"),
    ("(C)\\ 15", "(C)\\ 12"),  # both with values: the values compare too
    ("y = 1, x = 2", "(1, 2)"),  # a point only in alphabetical order
    ("(a, b) = (1, 2)", "(x, y) = (1, 2)"),  # names agree when both sides give them
    ("x = 1, y = 2", "(1, 2, 3)"),
    ("(0,1) \\cup (2,3)", "(0,1), (2,3)"),  # a union is not a list of points
    ("(0,1] \\cup (2,3)", "(2,3) \\cup (0,1)"),
    ("\\{1, 2\\}", "\\{1,1,2\\}"),  # a multiset keeps its repeats
    ("0,100", "100"),  # the list 0, 100: a hedge, not the number 100
    ("00,100", "100"),
    ("x > 3 \\text{ and } x > 1", "(3, \\infty)"),  # an intersection only of a lower and an upper bound
    ("x > -2 \\text{ or } x < 3", "(-2, 3)"),  # "or" is a union
    ("x < 3 = y", "y = 3"),  # not an equation turned round
    ("3 \\ge x", "x = 3"),
    ("2\\frac{1}{2}", "\\frac{1}{2}"),  # a mixed number is its sum
    ("2\\frac{3}{2}", "\\frac{7}{2}"),  # only a proper fraction makes one
    ("2.5\\frac{1}{2}", "3"),
    ("1011_2", "11"),  # no conversion: a base-2 number copied from the problem is not its value
    ("1012", "1012_2"),  # 2 is no digit in base 2: not a base
    ("1011_2", "1011_3"),
    ("x_1", "x"),
    ("B_{12}", "B"),  # a letter with a base subscript is a name, not the digit B in base 12
    ("x^{-1} = 5", "5"),  # x^{-1} is no name: it says x = 1/5 (only f^{-1}(x) names a function)
]


@pytest.mark.parametrize("pred, gold", EQUIVALENT)
def test_equivalent(pred, gold):
    assert is_equiv(pred, gold)
    assert is_equiv(gold, pred)


@pytest.mark.parametrize("pred, gold", NOT_EQUIVALENT)
def test_not_equivalent(pred, gold):
    assert not is_equiv(pred, gold)


def test_labelled_answer_pairs():
    """465 answer pairs labelled by hand (answer_pairs.jsonl, written to probe the grader). It agrees with
    every label except the pairs marked "miss", each with its reason: 10 that it calls equal against the
    label (documented choices, such as dropping unit words) and 37 that it calls unequal."""
    records = [json.loads(line) for line in (Path(__file__).parent / "answer_pairs.jsonl").read_text().splitlines()]
    wrong = [(r["pred"], r["gold"]) for r in records if is_equiv(r["pred"], r["gold"]) != r["equal"]]
    assert wrong == [(r["pred"], r["gold"]) for r in records if "miss" in r]
    misses = [r for r in records if "miss" in r]
    assert (len(records), sum(not r["equal"] for r in misses), sum(r["equal"] for r in misses)) == (465, 10, 37)


@pytest.mark.parametrize("raw, normalised", [
    ("x = \\left( \\dfrac12, 1{,}000 \\right).", "x=(\\frac{1}{2},1000)"),
    ("\\$1,\\!000", "1000"),
    ("\\text{(C)}", "C"),
    ("5 \\text{ cm}^2", "5"),
    ("2 \\le x < 3", "x=[2,3)"),
    ("x = 2 \\text{ or } x = 3", "x=2,x=3"),
])
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


@pytest.mark.parametrize("box", ["\\boxed{}", "\\boxed{ }", "\\boxed{\\,}", "\\boxed{$ $}", "\\boxed{\\quad}",
                                 "\\boxed{~}", "\\boxed{\\text{ }}", "\\boxed{\\left.\\right.}"])
def test_a_box_that_shows_nothing_is_no_answer(box):
    """Blank once normalised, not only in Python's whitespace: -1 (no answer), not -0.5 (wrong)."""
    assert extract_answer(f"so {box}.") is None and compute_reward(f"so {box}.", "5") == -1.0


@pytest.mark.parametrize("text, answer", [
    ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),  # nested braces
    ("\\boxed{\\sqrt{\\frac{1}{2}}}", "\\sqrt{\\frac{1}{2}}"),
    ("first \\boxed{1}, then \\boxed{2}", "2"),  # the last box wins
    ("\\boxed{1} and finally \\fbox{3}", "3"),
    ("$\\boxed 5$.", "5"),  # \boxed followed by a space and a token
    ("\\boxed {7}", "7"),
    ("\\boxed{\\left\\{ 1 \\right.}", "\\left\\{ 1 \\right."),  # an escaped brace does not close the box
    ("\\boxed{\\}}", "\\}"),
    ("\\boxed\n{7}", "7"),  # LaTeX reads one newline as a space
    ("\\boxed7.", "7"),  # a digit ends the command name
    ("so \\boxed 5, since", "5"),  # a comma, semicolon or colon after a one-token box is prose
    ("\\boxed 5;", "5"),
    ("\\boxed 1,2", "1,2"),
    ("so (\\boxed 5).", "5"),  # and so does a parenthesis the box is inside
    ("\\boxed (1,2)", "(1,2)"),
    ("\\boxed\\;5", None),  # an empty box, then a space and 5
    ("\\boxed{5} \\fboxsep", "5"),  # \fboxsep is not a box
    ("\\boxed{5} and \\boxed.", None),  # the last box is empty
    ("\\fbox{3}", "3"),
    ("the roots are $\\boxed{2}$ and $\\boxed{3}$.", "2, 3"),  # boxes side by side: one list
    ("\\boxed{2}, \\boxed{-1}", "2, -1"),
    ("so $x = \\boxed{2}$ or $x = \\boxed{3}$", "2, 3"),
    ("\\[\\boxed{2}\\]\n\\[\\boxed{3}\\]", "2, 3"),
    ("\\boxed{x=2} \\text{ or } \\boxed{x=3}", "x=2, x=3"),
    ("\\boxed{1}\\boxed{2}\\boxed{3}", "1, 2, 3"),
    ("$\\boxed{5}$\n\n$\\boxed{5}$", "5"),  # the same box twice is one answer
    ("$\\boxed{2}$, $\\boxed{2}$, $\\boxed{2}$", "2"),  # three times too
    ("$\\boxed{2}$, $\\boxed{3}$, $\\boxed{3}$", "2, 3"),  # a repeat drops out of a list
    ("$\\boxed{3}$, $\\boxed{2}$, $\\boxed{3}$", "2, 3"),  # wherever it is (was '3, 2, 3': wrong against '2, 3')
    ("\\boxed{2}, wait, \\boxed{3}", "3"),  # words between: a draft, then the answer
    ("\\boxed{2}. \\boxed{3}", "3"),
    ("\\boxed{\\boxed{2}} and \\boxed{3}", "3"),
    # one answer in two forms is that answer, the last box (the first: MATH-500 number_theory/459's solution)
    ("$\\boxed{15\\frac{39}{40}},$ or $\\boxed{\\frac{639}{40}}$ inches", "\\frac{639}{40}"),
    ("$\\boxed{\\dfrac{1}{2}}$ or $\\boxed{0.5}$", "0.5"),
    ("\\boxed{2 \\text{ or } \\boxed{3}}", "2 \\text{ or } \\boxed{3}"),  # a box inside a box: the outer one
    ("$\\boxed{2}$, $\\boxed{\\boxed{3}}$", "2, \\boxed{3}"),
    ("\\boxed{\\boxed{3}}", "\\boxed{3}"),
    ("\\boxed{2 \\text{ or } \\boxed{1}, no: \\boxed{3}}", "2 \\text{ or } \\boxed{1}, no: \\boxed{3}"),  # drafts inside
    ("\\boxed{1}" * (MAX_BOXES + 1), None),  # more boxes side by side than are read: none may drop out silently
    ("\\boxed{2} and \\boxed{}", None),  # the last box still decides
    ("so \\boxed{7}.\n</think>\n\nThe answer is 8.", "7"),  # a reasoning model's thoughts are read too
    ("\\boxed{ 42 }", "42"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are literal
    ("\\boxed{1", None),  # unbalanced
    ("\\boxed{5} then a truncated \\boxed{\\frac{1}", None),  # the last box decides, no fallback
    ("\\boxed{}", None),  # empty box: no answer
    ("\\boxed{   }", None),
    ("\\boxed", None),
    ("\\boxedx", None),
    ("no box here, the answer is 5", None),
    ("#### 42", None),  # unboxed forms need allow_unboxed=True
    ("", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("text, answer", [
    ("so 6 * 7 = 42\n#### 42", "42"),
    ("#### 1,000\nextra", "1,000"),
    ("Thus the answer is 42. Let me check.", "42"),
    ("The answer is: $\\frac{1}{2}$.", "$\\frac{1}{2}$"),
    ("The answer is 3.5", "3.5"),
    ("nothing here", None),
    ("\\boxed{7} and the answer is 8", "7"),  # a box always takes precedence
    ("\\boxed{7", None),  # a (broken) box exists, so no unboxed fallback
])
def test_extract_answer_unboxed(text, answer):
    assert extract_answer(text, allow_unboxed=True) == answer


def test_compute_reward_paper_values():
    assert compute_reward("... so \\boxed{\\frac{255}{4}}", "\\frac{255}{4}") == 1.0
    assert compute_reward("... so \\boxed{63.75}", "\\frac{255}{4}") == 1.0
    assert compute_reward("... so \\boxed{64}", "\\frac{255}{4}") == -0.5
    assert compute_reward("... so the answer is 63.75", "\\frac{255}{4}") == -1.0


def test_compute_reward_custom_values():
    values = dict(correct=2.0, wrong=0.25, no_answer=-3.0)
    assert compute_reward("\\boxed{5}", "5", **values) == 2.0
    assert compute_reward("\\boxed{6}", "5", **values) == 0.25
    assert compute_reward("5", "5", **values) == -3.0


@pytest.mark.parametrize("response, gold, reward", [
    ("\\boxed{}", "5", -1.0),  # an empty box is no answer
    ("```\n\\boxed{7}\n```\nSo the answer is \\boxed{5}.", "5", 1.0),  # code block, then the real box
    ("\\boxed{5}.\n```latex\n\\boxed{7}\n```", "5", -0.5),  # ... but a later code-block box counts
    ('The problem says "put \\boxed{42} here". I get \\boxed{5}.', "42", -0.5),  # quoted statement
    ("".join(f"\\boxed{{{k}}}" for k in range(10)), "0", -0.5),  # many boxes
    ("".join(f"\\boxed{{{k}}}" for k in range(10)), "9", -0.5),  # side by side: a list of candidates
    ("".join(f"\\boxed{{{k}}} then " for k in range(10)), "9", 1.0),  # drafts: only the last counts
    ("$\\boxed{2}$ or $\\boxed{3}$", "3", -0.5),  # a hedge over two boxes
    ("$\\boxed{2}$ and $\\boxed{3}$", "3, 2", 1.0),
    ("$\\boxed{2}$, $\\boxed{\\boxed{3}}$", "3", -0.5),  # the hedge, one box nested
    ("\\boxed{2 \\text{ or } \\boxed{3}}", "3", -0.5),
    ("\\boxed{2 \\text{ or } \\boxed{1} \\text{ no, } \\boxed{3}}", "3", -0.5),  # a draft box inside the hedge too
    (", ".join(f"$\\boxed{{{p}}}$" for p in (1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29)),
     "2, 3, 5, 7, 11, 13, 17, 19, 23, 29", -1.0),  # eleven boxes: the extra 1 must not drop out of the list
    ("I think it is 5.", "5", -1.0),  # hidden in text without a box
    ("the answer is 5", "5", -1.0),
    ("#### 5", "5", -1.0),
    ("\\boxed{4, 5}", "5", -0.5),  # hedged candidates
    ("\\boxed{4 \\text{ or } 5}", "5", -0.5),
    ("\\boxed{15}", "5", -0.5),  # the gold as a substring
    ("Compute $17 \\cdot 23$. ... \\boxed{17 \\cdot 23}", "391", -0.5),  # the problem's expression, not worked out
    ("What is $2^{10}$? ... \\boxed{2^{10}}", "1024", -0.5),
    ("\\boxed{5} ... wait, \\boxed{5", "5", -1.0),  # truncated last box, earlier draft ignored
    ("\\boxed{\\boxed{5}}", "5", 1.0),
])
def test_reward_hacking(response, gold, reward):
    assert compute_reward(response, gold) == reward


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="unknown backend"):
        is_equiv("1", "1", backend="sympy")


def test_math_verify_backend_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # makes `import math_verify` fail
    with pytest.raises(ImportError, match="pip install math-verify") as info:
        is_equiv("0.5", "\\frac{1}{2}", backend="math_verify")
    assert "\n" not in str(info.value)


def test_math_verify_backend():  # math-verify is a dev requirement: this runs, never skips
    assert is_equiv("0.5", "\\frac{1}{2}", backend="math_verify")
    assert not is_equiv("2", "3", backend="math_verify")


# --------------------------------------------------------------------------------------------------
# Properties: exact arithmetic, never raising, always fast.

LATEX_PIECES = ["\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "\\", "\\{", "\\}", "$", "\\frac", "\\dfrac",
                "\\sqrt", "\\pi", "\\left(", "\\right)", "\\text{", " cm", "^\\circ", "\\%", "\\!", "{,}",
                "1", "0", "9", "-", "+", ".", ",", "/", "(", ")", "[", "]", "x", "=", " ", "\n", "####",
                "the answer is ", "é", "\x00", "\\cdot", "\\times", "^", "^{", "\\pm", "\\overline{", "\\langle",
                "\\le ", "<", ">", "&", "\\\\", "\\begin{pmatrix}", "\\end{pmatrix}", "\\text{ or }", " ways", "y",
                "\\mathbb{R}"]
latex_soup = st.lists(st.sampled_from(LATEX_PIECES), max_size=80).map("".join)
any_text = st.one_of(st.text(max_size=200), latex_soup)


def _latex(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    return f"{'-' if x < 0 else ''}\\frac{{{abs(x.numerator)}}}{{{x.denominator}}}"


@settings(max_examples=100, deadline=None)
@given(st.fractions(max_denominator=1000), st.fractions(max_denominator=1000))
def test_fractions_compare_exactly(x, y):
    assert is_equiv(_latex(x), f"{x.numerator}/{x.denominator}")
    assert is_equiv(_latex(x), _latex(y)) == (x == y)
    assert compute_reward(f"so \\boxed{{{_latex(x)}}}.", _latex(y)) == (1.0 if x == y else -0.5)


@settings(max_examples=100, deadline=None)
@given(st.integers(-10**6, 10**6), st.integers(0, 6))
def test_decimals_compare_exactly(n, places):
    x = Fraction(n, 10**places)
    whole, fraction = divmod(abs(n), 10**places)
    decimal = f"{'-' if n < 0 else ''}{whole}.{fraction:0{places}d}" if places else str(n)
    assert is_equiv(decimal, _latex(x))


@settings(max_examples=200, deadline=None)
@given(any_text, any_text)
def test_never_raises(text, gold):
    answer = extract_answer(text)
    assert answer is None or (isinstance(answer, str) and answer.strip() == answer != "")
    unboxed = extract_answer(text, allow_unboxed=True)
    assert unboxed is None or isinstance(unboxed, str)
    assert isinstance(normalize_answer(text), str)
    assert is_equiv(text, gold) == is_equiv(gold, text)  # symmetric
    assert is_equiv(text, text) == (normalize_answer(text) != "")  # reflexive on real answers
    assert compute_reward(text, gold) in (1.0, -0.5, -1.0)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters="{}\\"), max_size=MAX_ANSWER_CHARS))
def test_box_returns_its_content(content):
    assert extract_answer(f"reasoning... \\boxed{{{content}}} done") == (content.strip() if normalize_answer(content)
                                                                        else None)  # `\boxed{.}` shows no answer


def _slowest_of_best(calls, repeats: int = 3) -> float:
    """Seconds the slowest call takes, each timed as the best of a few runs (robust to a busy machine)."""
    def best(call):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return min(times)
    return max(best(call) for call in calls)


def _all_calls(text):
    return [lambda: extract_answer(text), lambda: extract_answer(text, allow_unboxed=True),
            lambda: normalize_answer(text), lambda: compute_reward(text, "5"), lambda: is_equiv(text, "5"),
            lambda: is_equiv(text, text), lambda: is_equiv(text[:MAX_ANSWER_CHARS], text[:MAX_ANSWER_CHARS]),
            lambda: compute_reward(f"\\boxed{{{text[:MAX_ANSWER_CHARS - 2]}}}", text[:MAX_ANSWER_CHARS])]


ADVERSARIAL = {
    "deep nesting": "\\boxed{" * 100_000,
    "thousands of boxes": "\\boxed{1}" * 100_000,
    "1 MB of text": "x" * 1_000_000,
    "huge number in a box": "\\boxed{" + "9" * 500_000 + "}",
    "huge number": "9" * 500_000,
    "long number under the cap": "9" * 990,
    "open braces": "{" * 1_000_000,
    "close braces": "}" * 1_000_000,
    "backslashes": "\\" * 1_000_000,
    "brace pairs in a box": "\\boxed{" + "{}" * 500_000 + "}",
    "escaped braces in a box": "\\boxed{" + "\\{" * 500_000,
    "spaces after box": "\\boxed" + " " * 1_000_000 + "5",
    "nested fractions": "\\frac{" * 80 + "1" + "}{2}" * 80,
    "many radicals": "\\sqrt{9973}\\sqrt{1}" * 45,
    "many pis": "\\pi" * 333,
    "long list": "1," * 499,
    "nested parentheses": "(" * 500 + ")" * 500,
    "many slashes": "1/" * 499,
    "answer is": "the answer is " * 70_000,
    "hashes": "####" * 250_000,
    "dollars": "$" * 1_000_000,
    "text commands": "\\text{" * 160,
    "commands that start like a box": "\\fboxsep" * 125_000,
    "a box command glued to letters": "\\boxedx" * 140_000,
}


# A guard against super-linear work (backtracking regexes, quadratic scans), which on these inputs takes
# seconds to hours, not a speed target: the slowest takes about 0.015 s on an idle machine, and went past
# 0.05 s on a 2-core machine at load 8.
FAST = 0.5


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_adversarial_input_is_fast(name):
    assert _slowest_of_best(_all_calls(ADVERSARIAL[name])) < FAST


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(LATEX_PIECES), min_size=1, max_size=6).map("".join))
def test_megabyte_of_repeated_latex_is_fast(unit):
    text = unit * (1_000_000 // len(unit))
    assert _slowest_of_best(_all_calls(text)) < FAST


# --------------------------------------------------------------------------------------------------
# Command line


def _run(*args):
    return subprocess.run([sys.executable, str(REWARD_PY), *args], capture_output=True, text=True, timeout=60)


def test_cli_single_response():
    result = _run("--response", "so \\boxed{\\frac{1}{2}}.", "--gold", "0.5")
    assert result.returncode == 0
    assert "extracted:  '\\\\frac{1}{2}'" in result.stdout
    assert "equivalent: True" in result.stdout
    assert "reward:     +1.0" in result.stdout


def test_cli_jsonl(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    records = [{"out": "\\boxed{5}", "gold": 5},  # a numeric gold is read as text
               {"out": "\\boxed{6}", "gold": "5"}, {"out": "5", "gold": "5"}]
    lines = [json.dumps(r) for r in records] + [  # as training reads them: 1e-05 is 0.00001, not the text 1e-05
        '{"out": "\\\\boxed{0.00001}", "gold": 1e-05}', '{"out": "\\\\boxed{100000000000000000000}", "gold": 1e20}']
    path.write_text("\n".join(lines) + "\n\n")
    result = _run("--jsonl", str(path), "--response-key", "out", "--gold-key", "gold")
    assert result.returncode == 0, result.stderr
    assert "5 responses: correct 3, wrong 1, no answer 1; mean reward +0.300" in result.stdout


@pytest.mark.parametrize("content, message", [
    (None, "no such responses file"),
    ('{"response": "\\\\boxed{5}", "answer": "5"}\n{not json\n', "rollouts.jsonl:2: not valid JSON"),
    (b'{"response": "\\\\boxed{5}", "answer": "\xff"}\n', "rollouts.jsonl:1: not UTF-8"),
    ('{"response": "\\\\boxed{5}"}\n', "rollouts.jsonl:1: record lacks key"),
    ("\n", "rollouts.jsonl: no records to score"),  # printed "0 responses", exit 0
])
def test_cli_jsonl_errors(tmp_path, content, message):
    path = tmp_path / "rollouts.jsonl"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = _run("--jsonl", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
