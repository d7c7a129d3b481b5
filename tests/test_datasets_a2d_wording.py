"""query_types.csv's optional 4th column (wording: seen | paraphrase) reaches ``Query.wording``."""

from __future__ import annotations

import pytest
from helpers.dataset_builders import make_a2d, write_csv

from clawcrane.datasets.a2d import read_a2d
from clawcrane.datasets.records import Query
from clawcrane.datasets.validate import split_problems
from clawcrane.errors import DataError

TYPES = "text_annotations/query_types.csv"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_a2d(tmp_path_factory.mktemp("a2d"))


def _rewrite(root, header, rows):
    write_csv(root / TYPES, rows, header)


def test_three_column_files_give_unknown_wording(root):
    ds = read_a2d(root)
    assert {q.wording for q in ds.queries} == {""} and ds.queries[0].query_type


def test_the_wording_column_sets_query_wording(tmp_path):
    root = make_a2d(tmp_path / "a2d")
    _rewrite(root, ["video_id", "instance_id", "query_type", "wording"],
             [["vidA", "1", "position", "paraphrase"], ["vidA", "2", "motion", "seen"], ["vidB", "1", "appearance", ""]])
    ds = read_a2d(root)
    by_id = {q.query_id: q for q in ds.queries}
    assert (by_id["vidA_1"].query_type, by_id["vidA_1"].wording) == ("position", "paraphrase")
    assert by_id["vidA_2"].wording == "seen" and by_id["vidB_1"].wording == ""
    assert not split_problems(ds.problems)[0]


def test_an_unknown_wording_is_a_problem_and_keeps_the_query_type(tmp_path):
    root = make_a2d(tmp_path / "a2d")
    _rewrite(root, ["video_id", "instance_id", "query_type", "wording"], [["vidA", "1", "position", "novel"]])
    ds = read_a2d(root)
    q = next(q for q in ds.queries if q.query_id == "vidA_1")
    assert (q.query_type, q.wording) == ("position", "")
    errors = split_problems(ds.problems)[0]
    assert len(errors) == 1 and "'novel'" in errors[0] and "seen, paraphrase" in errors[0]


def test_a_wrong_header_is_still_refused(tmp_path):
    root = make_a2d(tmp_path / "a2d")
    _rewrite(root, ["video_id", "instance_id", "kind", "wording"], [["vidA", "1", "position", "seen"]])
    with pytest.raises(DataError, match="expected the header video_id,instance_id,query_type"):
        read_a2d(root)


def test_query_wording_is_keyword_only_and_follows_query_type():
    q = Query("v_1", "v", "the ball", "1", (0,), "appearance", "test", None, wording="seen")
    assert (q.query_type, q.wording, q.split) == ("appearance", "seen", "test")
    names = [f for f in Query.__dataclass_fields__]
    assert names.index("wording") == names.index("query_type") + 1
