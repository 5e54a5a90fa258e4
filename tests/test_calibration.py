import pytest

from edgekit.calibration import load_text_data, load_texts
from edgekit.errors import CalibrationError


def test_shipped_sets_are_disjoint_and_sized():
    data = load_text_data()
    assert len(data.calibration) == 1000
    assert len(data.heldout) == 300
    assert not set(data.calibration) & set(data.heldout)


def test_formats(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\n two \n")
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n\n{"text": "two"}\n')
    (tmp_path / "a.csv").write_text('id,text\n1,one\n2,"two, with comma"\n')
    assert load_texts(tmp_path / "a.txt") == ["one", "two"]
    assert load_texts(tmp_path / "a.jsonl") == ["one", "two"]
    assert load_texts(tmp_path / "a.csv") == ["one", "two, with comma"]


@pytest.mark.parametrize("name,content,match", [
    ("empty.txt", "\n \n", "no text samples"),
    ("bad.jsonl", '{"text": "ok"}\nnot json\n', r"bad.jsonl:2: not a JSON object"),
    ("nofield.jsonl", '{"body": "x"}\n', "no string field 'text'"),
    ("nocol.csv", "a,b\n1,2\n", "no 'text' column"),
    ("data.parquet", "x", "unsupported text format"),
])
def test_bad_files(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(CalibrationError, match=match):
        load_texts(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        load_texts(tmp_path / "nope.txt")
