"""Stream truth files (:mod:`kwspi.deploy.evaluation.truth`): round trip, and one clear error per bad file."""

from __future__ import annotations

import pytest

from kwspi.errors import KwspiError
from kwspi.deploy.evaluation.truth import TruthError, TruthRow, read_truth, write_truth

TRUTH = [TruthRow("yes", 2.0, 2.4), TruthRow("please", 3.0, 3.3), TruthRow("no", 10.0, 10.3)]


def test_round_trip(tmp_path):
    path = tmp_path / "t.csv"
    write_truth(path, TRUTH)
    assert path.read_text().splitlines() == ["label,start_s,end_s", "yes,2.000,2.400", "please,3.000,3.300",
                                             "no,10.000,10.300"]
    assert read_truth(path) == TRUTH


@pytest.mark.parametrize("text, message", [
    ("word,start,end\nyes,1,2\n", "header must be label,start_s,end_s"),
    ("", "header must be"),
    ("label,start_s,end_s\nyes,1\n", "line 2: expected label,start_s,end_s, got 'yes,1'"),
    ("label,start_s,end_s\nyes,1,2\nno,one,2\n", "line 3: expected"),
    ("label,start_s,end_s\nyes,2,1\n", "line 2: the word ends before it starts"),
    ("label,start_s,end_s\nyes,nan,1\n", "line 2: times must be finite"),
    ("label,start_s,end_s\nyes,-1,1\n", "line 2: times must be finite seconds >= 0"),
    ("label,start_s,end_s\n ,1,2\n", "line 2: empty label"),
])
def test_bad_files_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TruthError, match=message) as e:
        read_truth(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(KwspiError, match="missing.csv: cannot read"):
        read_truth(tmp_path / "missing.csv")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00RIFF")
    with pytest.raises(TruthError, match="not text"):
        read_truth(tmp_path / "b.csv")
    with pytest.raises(TruthError, match="cannot read"):
        read_truth(tmp_path)


def test_engine_and_voice_columns_round_trip_and_old_files_still_read(tmp_path):
    said = [TruthRow("yes", 2.0, 2.4, "mbrola", "mb-us1"), TruthRow("please", 3.0, 3.3, "piper", "joe")]
    path = tmp_path / "who.csv"
    write_truth(path, said)
    assert path.read_text().splitlines()[:2] == ["label,start_s,end_s,engine,voice", "yes,2.000,2.400,mbrola,mb-us1"]
    assert read_truth(path) == said
    old = tmp_path / "old.csv"
    old.write_text("label,start_s,end_s\nyes,2.0,2.4\n")
    assert read_truth(old) == [TruthRow("yes", 2.0, 2.4)] and read_truth(old)[0].engine == ""


def test_a_short_row_under_the_long_header_names_its_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("label,start_s,end_s,engine,voice\nyes,1,2\n")
    with pytest.raises(TruthError, match="line 2: expected label,start_s,end_s,engine,voice"):
        read_truth(path)
