"""Problems files as researchers export them (Hugging Face MATH, MATH-500, GSM8K, AIME), and the wrong files they
feed by mistake: each is read right, or refused with a message that names what the file is and the fix."""

import gzip
import json

import pytest

from common import InputError
from tasks import DataError, read_problems

HENDRYCKS = {"problem": "If $x^2 = 1$, what are the possible values of $x$?", "level": "Level 5", "type": "Algebra",
             "solution": "One root is $x = \\boxed{1}$, and so the other is $x = \\boxed{-1}$."}
MATH500 = {"problem": "Convert $(0,3)$ to polar coordinates.",
           "solution": "... $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
           "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
           "unique_id": "test/precalculus/807.json"}


def lines(*records):
    return "".join(json.dumps(r) + "\n" for r in records)


def test_a_solution_with_several_boxes_is_not_read_silently(tmp_path, capsys):
    path = tmp_path / "math.jsonl"
    path.write_text(lines(HENDRYCKS, MATH500))
    got = read_problems(str(path))
    assert got[0]["answer"] == "-1"  # MATH's own convention, the last box: a partial answer here ...
    err = capsys.readouterr().err  # ... so it is named, with the way to override it
    assert "1 of 2 problems" in err and "'line 1'" in err and "give it as 'answer'" in err
    path.write_text(lines({**HENDRYCKS, "solution": "We have $x = \\boxed{1}$ or $x = \\boxed{-1}$."}))
    assert read_problems(str(path))[0]["answer"] == "1, -1"  # boxes side by side: one list


def test_an_answer_that_holds_a_whole_solution_gives_its_box(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text(lines({"problem": "1+2?", "answer": "We add: $1+2=\\boxed{3}$."}))
    assert read_problems(str(path))[0]["answer"] == "3"
    assert "several" not in capsys.readouterr().err
    path.write_text(lines({"problem": HENDRYCKS["problem"], "answer": HENDRYCKS["solution"]}))
    assert read_problems(str(path))[0]["answer"] == "-1"  # partial, as from a solution: named the same way
    assert "1 of 1 problems have several" in capsys.readouterr().err


def test_a_blank_answer_beside_a_solution_gives_the_solutions_box(tmp_path, capsys):
    path = tmp_path / "p.jsonl"  # pandas writes a text column's missing values as ""
    path.write_text(lines({**MATH500, "answer": ""}, {**MATH500, "unique_id": "b", "answer": " ",
                                                      "solution": r"So \boxed{1} and \boxed{2}."}))
    first, second = read_problems(str(path))
    assert first["answer"] == MATH500["answer"] and second["answer"] == "1, 2"
    assert "1 of 2 problems have several" in capsys.readouterr().err  # the note reads the solution too


def test_placeholder_golds_no_response_can_reach_are_named(tmp_path, capsys):
    path = tmp_path / "numina.jsonl"  # NuminaMath marks proof problems, and those it has no answer for, so
    path.write_text(lines({"problem": "Prove that 2 > 1.", "answer": "proof"}, {"problem": "1+1?", "answer": "2"},
                          {"problem": "Find x.", "answer": "notfound"}))
    assert [p["answer"] for p in read_problems(str(path))] == ["proof", "2", "notfound"]  # read, but said
    assert "2 of 3 problems have the gold 'proof' or 'notfound' ('line 1', 'line 3')" in capsys.readouterr().err
    path.write_text(lines({"problem": "Which is even?", "answer": "\\text{none}"}))
    read_problems(str(path))
    assert capsys.readouterr().err == ""


def test_a_null_id_is_no_id(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(lines({"id": None, "problem": "p", "answer": "1"}, {"id": None, "problem": "q", "answer": "2"}))
    assert [r["id"] for r in read_problems(str(path))] == ["line 1", "line 2"]


def test_a_utf8_bom_is_read(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\ufeff" + lines(MATH500), encoding="utf-8")
    assert read_problems(str(path))[0]["id"] == "test/precalculus/807.json"


@pytest.mark.parametrize("content, message", [
    (json.dumps([MATH500]).encode(), "a JSON array, not JSON Lines"),
    (json.dumps([MATH500], indent=2).encode(), "a JSON array, not JSON Lines"),
    (gzip.compress(lines(MATH500).encode()), "gzip-compressed"),
    (b"PAR1\x15\x04\x15\xa0\x01" + bytes(range(256)) + b"PAR1", "not JSON Lines"),
    (b"problem,solution,answer,level\n\"1+1\",,2,1\n", "not JSON Lines"),
    (json.dumps({"data": [MATH500]}, indent=2).encode(), r"over several lines.*jq -c '\.data\[\]'"),
    ((lines(MATH500) * 2).replace("\n", "\r").encode(), "lone carriage return"),
])
def test_files_that_are_not_jsonl_are_named(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_problems(str(path))


def test_records_each_written_over_several_lines_are_named_with_the_command_that_joins_them(tmp_path):
    path = tmp_path / "p.jsonl"  # what `jq . IN.jsonl > OUT` or json.dump(record, f, indent=2) per record writes
    path.write_text("".join(json.dumps({**MATH500, "unique_id": u}, indent=2) + "\n" for u in "ab"))
    with pytest.raises(InputError, match=r"records written over several lines.*jq -c \. IN"):
        read_problems(str(path))  # jq -c '.[]', the advice before, wrote each record's values: "What is...", "2", ...


def test_a_crlf_file_whose_first_line_fills_the_sniffed_bytes_is_read(tmp_path):
    record = {"problem": "", "answer": "1"}
    record["problem"] = "x" * (4095 - len(json.dumps(record)))  # its \r is byte 4096 of the file, its \n byte 4097
    path = tmp_path / "p.jsonl"
    path.write_bytes((json.dumps(record) + "\r\n").encode() * 2)
    assert [r["answer"] for r in read_problems(str(path))] == ["1", "1"]


def test_missing_fields_name_the_keys_the_record_has(tmp_path):
    path = tmp_path / "aime.jsonl"
    path.write_text(lines({"ID": "2024-I-1", "Problem": "Every morning Aya...", "Answer": 204}))
    with pytest.raises(DataError, match="no 'problem' .*its keys: ID, Problem, Answer"):
        read_problems(str(path))


def test_levels_asked_of_a_file_without_levels(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(lines({"question": "Q?", "answer": "48/2 = <<48/2=24>>24\n#### 24"}))
    with pytest.raises(DataError, match="no problems at levels \\[4, 5\\]: no record has a 'level'"):
        read_problems(str(path), [4, 5])


def test_math_and_gsm8k_concatenated_with_null_columns(tmp_path):
    """datasets.concatenate_datasets([math, gsm8k]).to_json(...): each row has the other's columns as null."""
    path = tmp_path / "mixed.jsonl"
    columns = ("problem", "solution", "level", "type", "question", "answer")
    math = {**dict.fromkeys(columns), **{k: HENDRYCKS[k] for k in ("problem", "level", "type")},
            "solution": "So $\\boxed{70}$."}
    gsm = {**dict.fromkeys(columns), "question": "Q?", "answer": "48+24 = <<48+24=72>>72\n#### 72"}
    path.write_text(lines(math, gsm))
    got = read_problems(str(path))
    assert [(r["id"], r["problem"], r["answer"], r["level"]) for r in got] == [
        ("line 1", HENDRYCKS["problem"], "70", 5), ("line 2", "Q?", "72", None)]


def test_numeric_ids_are_text_and_equal_to_the_same_id_written_as_text(tmp_path):
    """An id column of integers (as pandas writes an index) gives text ids, so that 17 and "17" are one id."""
    path = tmp_path / "p.jsonl"
    path.write_text(lines({"id": 17, "problem": "1+1?", "answer": "2"}, {"id": 3, "problem": "2+2?", "answer": "4"}))
    assert [p["id"] for p in read_problems(str(path))] == ["17", "3"]
    path.write_text(lines({"id": 17, "problem": "1+1?", "answer": "2"}, {"id": "17", "problem": "2+2?", "answer": "4"}))
    with pytest.raises(DataError, match=r"p.jsonl:2: id '17' already used at .*p.jsonl:1; ids must be unique"):
        read_problems(str(path))


def test_maths_level_question_mark_is_no_level(tmp_path):
    """Hendrycks MATH has problems of "Level ?": read with no level, so --levels leaves them out."""
    path = tmp_path / "math.jsonl"
    path.write_text(lines({**HENDRYCKS, "solution": "$\\boxed{1}$", "level": "Level ?"},
                          {**HENDRYCKS, "solution": "$\\boxed{2}$", "unique_id": "b"}))
    unknown, five = read_problems(str(path))
    assert (unknown["level"], unknown["answer"], five["level"]) == (None, "1", 5)
    assert [p["id"] for p in read_problems(str(path), levels=[5])] == ["b"]


def test_a_gsm8k_answer_whose_reasoning_writes_four_hashes_gives_what_follows_the_last(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text(lines({"question": "Q?", "answer": "Mark #### as the divider: 3 + 4 = 7\n#### 7"}))
    assert read_problems(str(path))[0]["answer"] == "7"


def test_an_id_less_record_is_named_by_its_line_in_a_path_with_a_colon(tmp_path):
    """"PATH:LINE" is cut at its last colon: a folder named run:2 is part of the path, not the line."""
    path = tmp_path / "run:2" / "gsm.jsonl"
    path.parent.mkdir()
    path.write_text(lines({"question": "Q1?", "answer": "#### 1"}, {"question": "Q2?", "answer": "#### 2"}))
    assert [p["id"] for p in read_problems(str(path))] == ["line 1", "line 2"]


def test_levels_keeps_the_problems_of_every_level_given(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text(lines(*({**HENDRYCKS, "unique_id": f"p{i}", "level": f"Level {lv}"}
                            for i, lv in enumerate((3, 4, 5, 4)))))
    assert [p["id"] for p in read_problems(str(path), levels=[4, 5])] == ["p1", "p2", "p3"]


def test_maths_own_release_a_folder_of_json_files_is_refused_with_the_command_that_converts_it(tmp_path):
    (tmp_path / "MATH" / "train" / "algebra").mkdir(parents=True)
    (tmp_path / "MATH" / "train" / "algebra" / "1.json").write_text(json.dumps(HENDRYCKS))
    with pytest.raises(DataError, match=r"MATH is a folder of JSON files \(MATH's own release: a file a problem\), "
                                        r"not a problems file: make one with find .*MATH -name '\*.json' \| sort \| "
                                        r"xargs jq -c '\. \+ {id: input_filename}' > problems.jsonl \(each file's "
                                        r"path its id\)"):
        read_problems(str(tmp_path / "MATH"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty is a folder, not a problems file"):
        read_problems(str(tmp_path / "empty"))


def test_an_answer_whose_box_holds_nothing_readable_is_refused_with_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(lines({"problem": "1+1?", "answer": "2"}, {"problem": "2+2?", "answer": "\\boxed{ }"}))
    with pytest.raises(DataError, match=r"p.jsonl:2: its 'answer' has a \\boxed\{\} with nothing readable in it"):
        read_problems(str(path))

