"""A user's own video: clip or frame folder, sentences from the command line, CSV, JSON or TXT."""

from __future__ import annotations

import json

import pytest
from helpers.dataset_builders import make_clip, make_frame_folder, write_csv

from clawcrane.datasets.own_video import read_own_video, read_queries_file
from clawcrane.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("own") / "street.mp4", num_frames=6, height=32, width=48, fps=10)


def test_clip_with_command_line_queries(clip):
    ds = read_own_video(clip, queries=["The  RED car", "a person on the left"])
    (video,) = ds.videos.values()
    assert (video.video_id, video.num_frames, video.height, video.width, video.split) == ("street", 6, 32, 48, "")
    assert video.fps == pytest.approx(10.0)
    assert [(q.query_id, q.sentence, q.frames, q.instance_id) for q in ds.queries] == [
        ("q1", "the red car", (), None),
        ("q2", "a person on the left", (), None),
    ]
    assert ds.name == "video" and ds.samples() == []


def test_queries_from_csv_with_and_without_ids(tmp_path, clip):
    with_ids = write_csv(tmp_path / "a.csv", [["car", "the red car"], ["man", "a man"]], ["query_id", "query"])
    assert [(q.query_id, q.sentence) for q in read_own_video(clip, queries_file=with_ids).queries] == [
        ("car", "the red car"),
        ("man", "a man"),
    ]
    plain = write_csv(tmp_path / "b.csv", [["the red car"], ["a, quoted, sentence"]], ["query"])
    assert [(q.query_id, q.sentence) for q in read_own_video(clip, queries_file=plain).queries] == [
        ("q1", "the red car"),
        ("q2", "a, quoted, sentence"),
    ]


def test_queries_from_json_strings_or_objects(tmp_path, clip):
    strings = tmp_path / "s.json"
    strings.write_text(json.dumps(["a dog", "the cat"]))
    assert [q.query_id for q in read_own_video(clip, queries_file=strings).queries] == ["q1", "q2"]
    objects = tmp_path / "o.json"
    objects.write_text(json.dumps([{"query_id": "d", "query": "A dog"}, {"query": "the cat"}]))
    assert [(q.query_id, q.sentence) for q in read_own_video(clip, queries_file=objects).queries] == [
        ("d", "a dog"),
        ("q2", "the cat"),
    ]


def test_sidecar_queries_file_is_picked_up(tmp_path):
    clip = make_clip(tmp_path / "walk.mp4")
    (tmp_path / "walk.queries.txt").write_text("a man walking\n\nthe dog\n")
    assert [q.sentence for q in read_own_video(clip).queries] == ["a man walking", "the dog"]


def test_frame_folder(tmp_path):
    folder = make_frame_folder(tmp_path / "frames", num_frames=4, height=24, width=32)
    ds = read_own_video(folder, queries=["a box"])
    video = ds.videos["frames"]
    assert (video.num_frames, video.height, video.width, video.fps) == (4, 24, 32, 25.0)
    assert video.read_frame(3).shape == (24, 32, 3)


@pytest.mark.parametrize(
    "name, content, where",
    [
        ("q.csv", "query_id,query\na,a dog\nb,   \n", "q.csv:3: empty sentence"),
        ("q.json", json.dumps(["a dog", ""]), "q.json (entry 1): empty sentence"),
        ("q.csv", "query_id,query\na,a dog\nb,!!!\n", "q.csv:3: '!!!' has no word"),  # refused before any detection
        ("q.csv", "id,text\n1,a dog\n", "no 'query' column"),
        ("q.csv", "query_id,query\na,a dog,extra\n", "q.csv:2: expected 2 columns"),
        ("q.json", "{not json", "invalid JSON"),
    ],
)
def test_bad_queries_files_raise_one_line_errors_naming_file_and_row(tmp_path, clip, name, content, where):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_queries_file(path) if "JSON" in where else read_own_video(clip, queries_file=path)
    assert where in str(err.value) and "\n" not in str(err.value)


def test_empty_command_line_query_and_split_are_refused(clip):
    with pytest.raises(DataError, match="query 2 given on the command line: empty sentence"):
        read_own_video(clip, queries=["a dog", "  "])
    with pytest.raises(ConfigError):
        read_own_video(clip, queries=["a dog"], split="test")


def test_an_automatic_query_id_never_takes_an_id_given_to_another_query():
    from clawcrane.datasets.own_video import make_queries

    # the first query has no id (would be q1) and the second was given q1 by the user: the first becomes q2
    qs = make_queries("v", [(None, "the red circle"), ("q1", "the dog")])
    assert [q.query_id for q in qs] == ["q2", "q1"]
