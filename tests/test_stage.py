"""The stage: one incoming stream held privately, its frames checked and charged, and its COMMIT verified."""

from __future__ import annotations

from typing import Any

import pytest

from actors.core.errors import KeyTooLarge, WireError
from actors.core.messages import Commit, Data, KeyPart
from actors.jobs import get_job
from actors.reducer.budget import footprint
from actors.reducer.stage import Stage

from .support import staged_items

MAX_KEY = 1 << 20


def staged(*frames: dict[str, Any], job_name: str = "wordcount") -> Stage:
    stage = Stage(get_job(job_name), MAX_KEY)
    for items in frames:
        stage.add(Data(dict(items)))
    return stage


def honest_commit(*frames: dict[str, int]) -> Commit:
    """What a correct mapper would claim for these wordcount frames, computed here, not by the code under test."""
    return Commit(frames=len(frames), keys=sum(len(f) for f in frames), checksum=sum(sum(f.values()) for f in frames))


# ---------------------------------------------------------------------------------------------------------------
# Stage


def test_stage_combines_frames_and_verifies() -> None:
    frames = ({"a": 1, "b": 2}, {"a": 3}, {"c": 10})
    stage = staged(*frames)
    assert staged_items(stage) == {"a": 4, "b": 2, "c": 10}
    stage.verify(honest_commit(*frames))


@pytest.mark.parametrize(
    "claim",
    [
        Commit(frames=3, keys=3, checksum=6),  # one frame fewer received than claimed
        Commit(frames=2, keys=2, checksum=6),  # a key missing
        Commit(frames=2, keys=3, checksum=7),  # a count differs
        Commit(frames=1, keys=3, checksum=6),
        Commit(frames=0, keys=0, checksum=0),
    ],
)
def test_stage_refuses_a_commit_that_differs(claim: Commit) -> None:
    stage = staged({"a": 1, "b": 2}, {"c": 3})
    with pytest.raises(WireError, match="COMMIT does not match"):
        stage.verify(claim)


def test_empty_stream_verifies_against_an_empty_commit() -> None:
    staged().verify(Commit(frames=0, keys=0, checksum=0))


@pytest.mark.parametrize("items", [{"a": True}, {"a": 0}, {"a": -2}, {"a": "1"}, {"a": 1.0}])
def test_stage_refuses_values_the_job_cannot_produce(items: dict[str, Any]) -> None:
    stage = Stage(get_job("wordcount"), MAX_KEY)
    with pytest.raises(WireError):
        stage.add(Data(items))


# ---------------------------------------------------------------------------------------------------------------
# Long keys in pieces, and what a stage holds


def test_a_long_key_is_joined_from_its_pieces() -> None:
    stage = Stage(get_job("wordcount"), MAX_KEY)
    stage.add(Data({"a": 1}))
    for piece in ("x" * 100, "é" * 50):
        stage.add_part(KeyPart(piece))
    stage.add(Data({"日本": 2}))
    stage.add(Data({"a": 3}))
    stage.verify(Commit(frames=5, keys=3, checksum=6))
    assert staged_items(stage) == {"a": 4, "x" * 100 + "é" * 50 + "日本": 2}


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([KeyPart("ab"), Data({"c": 1, "d": 1})], "must hold one item"),
        ([KeyPart("ab"), Commit(frames=1, keys=0, checksum=0)], "inside a long key"),
    ],
)
def test_a_long_key_must_end_in_one_data_item(frames: list[Any], match: str) -> None:
    stage = Stage(get_job("wordcount"), MAX_KEY)
    with pytest.raises(WireError, match=match):
        for frame in frames:
            if isinstance(frame, KeyPart):
                stage.add_part(frame)
            elif isinstance(frame, Data):
                stage.add(frame)
            else:
                stage.verify(frame)


def test_a_key_over_max_key_is_refused_naming_it() -> None:
    stage = Stage(get_job("wordcount"), 100)
    stage.add_part(KeyPart("x" * 60))
    with pytest.raises(KeyTooLarge, match="MR_MAX_KEY"):
        stage.add_part(KeyPart("é" * 21))  # 42 bytes in UTF-8: 102 in all
    other = Stage(get_job("wordcount"), 100)
    other.add_part(KeyPart("x" * 60))
    with pytest.raises(KeyTooLarge, match="MR_MAX_KEY"):
        other.add(Data({"y" * 41: 1}))


def test_a_stage_holds_what_its_frames_decode_to() -> None:
    stage = Stage(get_job("wordcount"), MAX_KEY)
    first, second = {f"w{i}": i + 1 for i in range(1000)}, {f"v{i}": 1 for i in range(500)}
    stage.add(Data(dict(first)))
    stage.add(Data(dict(second)))
    assert stage.held == footprint(first) + footprint(second)
    assert stage.held > 8 * 1500  # far more than the keys' wire bytes (about 7 bytes a key here)
