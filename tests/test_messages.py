"""Messages: every class round-trips through its wire form, and from_wire checks version, type, fields and types."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from actors.core import wire
from actors.core.errors import WireError
from actors.core.messages import (
    VERSION,
    Assignment,
    AttemptKey,
    Columns,
    Commit,
    Data,
    Finalize,
    KeyPart,
    MapResult,
    Missing,
    PartFile,
    Progress,
    RecordPairs,
    Records,
    Release,
    Report,
    SplitDone,
    SplitFailed,
    SplitRecords,
    StreamAck,
    StreamHeader,
    from_wire,
    to_wire,
)

SAMPLES: list[Any] = [
    Assignment(
        job="job-1", epoch=2, split=3, attempt=1, job_name="wordcount", input_kind="served",
        input_location="http://master:8080/v1/inputs/job-1", input_name="book.txt", start=0, end=6000,
        partitions=3, only_partitions=[0, 2],
    ),
    Progress(job="job-1", epoch=2, split=3, attempt=1, bytes_read=4096),
    SplitDone(
        job="job-1", epoch=2, split=3, attempt=1, bytes_read=6000, keys=77, duplicates=1,
    ),
    SplitDone(
        job="job-1", epoch=2, split=3, attempt=1, bytes_read=6000, keys=2, duplicates=0, part_records=2,
        part_bytes=30, part_sha256="ab" * 32,
    ),
    SplitRecords(job="job-1", epoch=2, split=3, attempt=1, records=RecordPairs([["a", 1], [["t", 2], {"v": [1.5]}]])),
    SplitFailed(job="job-1", epoch=2, split=3, attempt=1, cause="reducer-1 unreachable", retriable=True),
    StreamHeader(job="job-1", epoch=2, split=3, attempt=1, partition=1, partitions=3, job_name="wordcount", size=999),
    Data(items={"a": 1, "é": 2, "日本": 3}),
    Columns(keys="aé日本".encode(), ends=bytes([1, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0]),
            counts=b"".join(n.to_bytes(8, "little") for n in (1, 2, 3))),
    KeyPart(text="a long key's first piece, é 日本"),
    Commit(frames=2, keys=10, checksum=55),
    StreamAck(job="job-1", epoch=2, split=3, partition=1, status="duplicate", incarnation="inc-b"),
    Finalize(job="job-1", epoch=2, partition=1, splits=8, job_name="wordcount"),
    Report(job="job-1", epoch=2, partition=1, incarnation="inc-b", splits=8,
           payload=MapResult({"a": 5, "b": ["x", "y"]})),
    Report(job="job-1", epoch=2, partition=1, incarnation="inc-b", splits=8,
           payload=Columns(b"ab", b"\x01\0\0\0\x02\0\0\0", b"\x02" + b"\0" * 7 + b"\x01" + b"\0" * 7)),
    Report(job="job-1", epoch=2, partition=1, incarnation="inc-b", splits=8,
           payload=PartFile("part-00001", 10, 2, "ab" * 32)),
    Report(job="job-1", epoch=2, partition=1, incarnation="inc-b", splits=8,
           payload=Records([["a", 1], [[1, "b"], {"c": [2]}], ["a", None]])),
    Missing(job="job-1", epoch=2, partition=1, incarnation="inc-b", splits=[0, 4]),
    Release(job="job-1", epoch=2),
]
IDS = [type(m).__name__ for m in SAMPLES]


def fields_of(message: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(message))


def test_every_message_class_has_a_sample() -> None:
    import actors.core.messages as module

    classes = {
        obj for obj in vars(module).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
    }
    payloads = {type(m.payload) for m in SAMPLES if isinstance(m, Report)}
    assert classes == {type(m) for m in SAMPLES} | payloads


@pytest.mark.parametrize("message", SAMPLES, ids=IDS)
def test_round_trip(message: Any) -> None:
    raw = to_wire(message)
    assert raw["v"] == VERSION
    assert raw["type"] == type(message).__name__.lower()
    assert from_wire(raw, type(message)) == message
    # And through the real codec, as peers see it.
    assert from_wire(wire.decode(wire.encode(raw), 1 << 20), type(message)) == message


@pytest.mark.parametrize("message", SAMPLES, ids=IDS)
def test_one_of_several_expected(message: Any) -> None:
    others = [type(m) for m in SAMPLES if type(m) is not type(message)][:2]
    assert from_wire(to_wire(message), others[0], others[1], type(message)) == message


@pytest.mark.parametrize("version", [0, 2, "1", None, 1.5, [1]])
def test_wrong_version(version: Any) -> None:
    raw = to_wire(SAMPLES[1]) | {"v": version}
    with pytest.raises(WireError, match="version"):
        from_wire(raw, Progress)


def test_missing_version() -> None:
    raw = to_wire(SAMPLES[1])
    del raw["v"]
    with pytest.raises(WireError, match="version"):
        from_wire(raw, Progress)


@pytest.mark.parametrize("version", [True, 1.0], ids=["bool", "float"])
def test_version_must_be_the_int_1(version: Any) -> None:
    raw = to_wire(SAMPLES[1]) | {"v": version}
    with pytest.raises(WireError, match="version"):
        from_wire(raw, Progress)


@pytest.mark.parametrize("name", ["commit", "nope", "Progress", 1, None, ["progress"]])
def test_wrong_type_name(name: Any) -> None:
    raw = to_wire(SAMPLES[1]) | {"type": name}
    with pytest.raises(WireError, match="expected a progress message"):
        from_wire(raw, Progress)


def test_right_message_wrong_expectation() -> None:
    with pytest.raises(WireError, match="expected a commit or release message, got 'progress'"):
        from_wire(to_wire(SAMPLES[1]), Commit, Release)


@pytest.mark.parametrize("raw", [None, [], "progress", 1, b"x", [("v", 1)]])
def test_not_a_map(raw: Any) -> None:
    with pytest.raises(WireError, match="map"):
        from_wire(raw, Progress)


CASES = [(m, name) for m in SAMPLES for name in fields_of(m)]


@pytest.mark.parametrize(("message", "name"), CASES, ids=[f"{type(m).__name__}.{n}" for m, n in CASES])
def test_missing_field_is_named(message: Any, name: str) -> None:
    raw = to_wire(message)
    del raw[name]
    with pytest.raises(WireError, match=f"missing fields \\['{name}'\\]"):
        from_wire(raw, type(message))


@pytest.mark.parametrize("message", SAMPLES, ids=IDS)
def test_unknown_field_is_named(message: Any) -> None:
    raw = to_wire(message) | {"surprise": 1}
    with pytest.raises(WireError, match="unknown fields \\['surprise'\\]"):
        from_wire(raw, type(message))


def bad_values(kind: Any) -> list[Any]:
    """Values of the wrong type for a field of type ``kind``."""
    if kind is RecordPairs:
        return ["x", None, {"a": 1}, [1], [[1]], [["a", 1, 2]], [("a", 1)]]
    origin = typing.get_origin(kind) or kind
    if origin is int:
        return [True, False, -1, 1.0, "1", None, [1]]
    if origin is str:
        return [1, b"x", None, ["x"], True]
    if origin is bool:
        return [1, 0, "true", None]
    if origin is bytes:
        return ["x", 1, None, [1], bytearray(b"x")]
    if origin is dict:
        return [[], "x", None, [("a", 1)]]
    if origin is list:
        (item,) = typing.get_args(kind)
        wrong = [[1], [b"x"], [None]] if item is str else [[True], [-1], ["1"], [1.0], [0, False]]
        return ["x", None, {"a": 1}, *wrong]
    if typing.get_args(kind) and all(dataclasses.is_dataclass(arg) for arg in typing.get_args(kind)):
        return [[], "x", None, {}, {"type": "columns"}, {"type": "data", "items": {}}]  # a tagged payload
    raise AssertionError(f"no bad values for {kind}")


TYPE_CASES = [(m, name, bad) for m in SAMPLES for name, kind in fields_of(m).items() for bad in bad_values(kind)]


@pytest.mark.parametrize(
    ("message", "name", "bad"), TYPE_CASES, ids=[f"{type(m).__name__}.{n}={b!r}" for m, n, b in TYPE_CASES]
)
def test_bad_field_type_is_named(message: Any, name: str, bad: Any) -> None:
    raw = to_wire(message) | {name: bad}
    with pytest.raises(WireError, match=f"field '{name}'"):
        from_wire(raw, type(message))


def test_zero_and_big_ints_and_empty_lists_are_fine() -> None:
    raw = to_wire(SAMPLES[0]) | {"epoch": 0, "end": 2**63, "only_partitions": []}
    message = from_wire(raw, Assignment)
    assert (message.epoch, message.end, message.only_partitions) == (0, 2**63, [])


def test_messages_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES[6].frames = 3


KEYED = [m for m in SAMPLES if {"job", "epoch", "split", "attempt"} <= set(fields_of(m))]


def test_the_keyed_messages() -> None:
    assert {type(m) for m in KEYED} == {Assignment, Progress, SplitDone, SplitRecords, SplitFailed, StreamHeader}


@pytest.mark.parametrize("message", KEYED, ids=[type(m).__name__ for m in KEYED])
def test_key_names_the_attempt_and_stays_off_the_wire(message: Any) -> None:
    assert message.key == AttemptKey(job="job-1", epoch=2, split=3, attempt=1)
    assert "key" not in to_wire(message)
    assert from_wire(to_wire(message), type(message)).key == message.key


@pytest.mark.parametrize("change", [{"job": "job-2"}, {"epoch": 3}, {"split": 4}, {"attempt": 2}])
def test_keys_differing_in_any_part_differ(change: dict[str, Any]) -> None:
    progress = Progress(job="job-1", epoch=2, split=3, attempt=1, bytes_read=0)
    other = dataclasses.replace(progress, **change)
    assert other.key != progress.key
    assert dataclasses.replace(progress, bytes_read=99).key == progress.key  # the payload is not the key


# (Assignment's "reducers", trimmed once, is back: R, which a mapper routes partition p % R by.)
@pytest.mark.parametrize(("cls", "dropped"), [(Assignment, "input_size"),
                                               (SplitDone, "mapper"), (SplitDone, "incarnations")])
def test_fields_nobody_read_are_gone_and_refused(cls: type[Any], dropped: str) -> None:
    # Trimmed from the protocol (no actor read them): an actor still sending one is told so by name.
    sample = next(m for m in SAMPLES if type(m) is cls)
    assert dropped not in fields_of(sample)
    with pytest.raises(WireError, match=f"unknown fields \\['{dropped}'\\]"):
        from_wire(to_wire(sample) | {dropped: 1}, cls)


def test_an_assignment_carries_r_and_its_cut_points_and_needs_them() -> None:
    sample = next(m for m in SAMPLES if type(m) is Assignment)
    given = dataclasses.replace(sample, partitions=8, reducers=3, cuts=["a", "m"], sample=0)
    assert from_wire(wire.decode(wire.encode(to_wire(given)), 1 << 20), Assignment) == given
    for name in ("reducers", "cuts", "sample"):
        raw = to_wire(given)
        del raw[name]
        with pytest.raises(WireError, match=name):
            from_wire(raw, Assignment)
    with pytest.raises(WireError, match="cuts"):
        from_wire(to_wire(given) | {"cuts": ["a", 3]}, Assignment)


def test_a_url_assignment_carries_its_pinned_version_and_needs_it() -> None:
    # The mapper pins every read to the version the master probed; an actor that does not send the pin is refused
    # by name rather than read unpinned.
    assignment = Assignment(
        job="j", epoch=1, split=0, attempt=1, job_name="wordcount", input_kind="url",
        input_location="https://bucket.example/a.txt?sig=x", input_name="a.txt", start=0, end=10, partitions=2,
        only_partitions=[], pin_size=10, pin_etag='"abc"', pin_modified="",
    )
    raw = to_wire(assignment)
    assert from_wire(wire.decode(wire.encode(raw), 1 << 20), Assignment) == assignment
    del raw["pin_etag"]
    with pytest.raises(WireError, match=r"missing fields \['pin_etag'\]"):
        from_wire(raw, Assignment)
    with pytest.raises(WireError, match="'pin_size' has a bad value"):
        from_wire(to_wire(assignment) | {"pin_size": -1}, Assignment)


@pytest.mark.parametrize("payload", [
    {"type": "report"},  # not a payload type
    {"type": "mapresult", "totals": {}, "top_keys": b""},  # a map and a run at once: an unknown field
    {"type": "partfile", "name": "p", "size": -1, "keys": 0, "sha256": ""},  # a negative size
    {"totals": {}},  # untagged
])
def test_a_report_carries_exactly_one_tagged_payload(payload: dict[str, Any]) -> None:
    raw = to_wire(Report("j", 1, 0, "inc", 1, MapResult({}))) | {"payload": payload}
    with pytest.raises(WireError, match=r"payload|mapresult|partfile"):
        from_wire(raw, Report)
