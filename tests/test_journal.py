"""The master's journal: interrupted jobs are found again, and a damaged journal never stops the master starting."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.master.app import RESTARTED
from actors.master.journal import BadRecord, Journal, parse_line

from .conftest import actor_settings, start_actor


def started(job_id: str, epoch: int = 1, **changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "event": "started", "id": job_id, "epoch": epoch, "job": "wordcount", "key": f"key-{job_id}",
        "created": 1700000000.5, "split_size": 65536,
        "input": {"kind": "path", "location": "book.txt", "name": "book.txt", "size": 1234},
    }
    entry.update(changes)
    return entry


def line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry).encode() + b"\n"


def damaged_journal(path: Path) -> None:
    """Good records around every kind of bad one: what a crashed master or a bad disk can leave behind."""
    missing_input = started("bad-missing")
    del missing_input["input"]
    wrong_input = started("bad-input-type")
    wrong_input["input"] = {**wrong_input["input"], "size": "1234"}
    path.write_bytes(b"".join([
        line(started("good-1")),
        b'{"event": "started", "id": "bad-utf8", "job": "\xff\xfe"}\n',  # not UTF-8
        line(started("good-ended")),
        line({"event": "ended", "id": "good-ended", "epoch": 1, "state": "done"}),
        line(missing_input),
        line(started("bad-epoch", epoch="7")),  # type: ignore[arg-type]  # a string where an int belongs
        line(started("bad-bool", epoch=True)),  # a bool is not an int
        line(wrong_input),
        line({"event": "ended", "id": "good-1"}),  # an "ended" missing its epoch must not close good-1
        b"[1, 2, 3]\n",
        line(started("good-2", epoch=5)),
        b'{"event": "started", "id": "torn", "epo',  # the last write of a dying master, cut short
    ]))


def test_interrupted_skips_every_bad_record_and_keeps_the_good_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(str(tmp_path))
    assert journal.path is not None
    damaged_journal(journal.path)
    with caplog.at_level(logging.WARNING, logger="actors.master.journal"):
        lost = journal.interrupted()
    assert sorted((r.id, r.epoch, key) for r, key in lost) == [("good-1", 1, "key-good-1"),
                                                               ("good-2", 5, "key-good-2")]
    record = next(r for r, _ in lost if r.id == "good-1")
    assert (record.job_name, record.input.size, record.split_size) == ("wordcount", 1234, 65536)
    skipped = {r.fields["line"]: r.fields["reason"] for r in caplog.records  # type: ignore[attr-defined]
               if r.getMessage() == "journal_line_skipped"}
    assert sorted(skipped) == [2, 5, 6, 7, 8, 9, 10, 12], skipped  # one log line per bad record, by line number
    assert "not UTF-8" in skipped[2]
    assert "missing fields ['input']" in skipped[5]
    assert "'epoch' is str" in skipped[6] and "'epoch' is bool" in skipped[7]
    assert "input field 'size' is str" in skipped[8]
    assert "missing fields ['epoch', 'state']" in skipped[9]
    assert "not an object" in skipped[10]
    assert "not JSON" in skipped[12]


@pytest.mark.parametrize("raw, reason", [
    (b"\xc3\x28", "not UTF-8"),
    (b"{", "not JSON"),
    (b'"started"', "not an object"),
    (b'{"event": "paused", "id": "x", "epoch": 1}', "unknown event 'paused'"),
    (b'{"event": "ended", "id": 3, "epoch": 1, "state": "done"}', "'id' is int, not str"),
    (b'{"event": "ended", "id": "x", "epoch": 1.5, "state": "done"}', "'epoch' is float, not int"),
    (line(started("x", input={"kind": "path"})).strip(), "input missing fields"),
    (line(started("x", input={"kind": "path", "location": "a", "name": "a", "size": 1, "evil": 1})).strip(),
     "input has unknown fields ['evil']"),
    (line(started("x", created="yesterday")).strip(), "'created' is str"),
    # Past the type checks: a hostile or corrupted journal must not crash the master nor reach a status.
    (b'{"event": "ended", "id": "x", "epoch": ' + b"9" * 5000 + b', "state": "done"}', "a number too long"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"event": "ended", "id": "x", "epoch": 1, "state": "done", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "nested too deeply"),
    (line(started("x")).replace(b"1700000000.5", b"NaN").strip(), "NaN is not a JSON number"),
    (line(started("x")).replace(b"1700000000.5", b"-Infinity").strip(), "-Infinity is not a JSON number"),
    (line(started("x")).replace(b"1700000000.5", b"1e999").strip(), "'created' is inf, not a finite number"),
    (line(started("x", created=-1.0)).strip(), "'created' is -1.0, not a finite number >= 0"),
    (line(started("x", epoch=-3)).strip(), "'epoch' is -3"),
    (line(started("x", split_size=0)).strip(), "'split_size' is 0, not > 0"),
    (line(started("x", input={"kind": "path", "location": "a", "name": "a", "size": -1})).strip(),
     "input size -1 is negative"),
    (line(started("x", input={"kind": "pickle", "location": "a", "name": "a", "size": 1})).strip(),
     "input kind 'pickle' is not one of"),
])
def test_parse_line_names_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(BadRecord, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_line(raw)


def test_a_journal_round_trip_reports_only_jobs_never_ended(tmp_path: Path) -> None:
    from actors.inputs.ref import InputRef
    from actors.master.record import JobRecord

    journal = Journal(str(tmp_path))
    ref = InputRef("served", "http://m/x", "compute", 10)
    first = JobRecord(id="a", epoch=1, job_name="wordcount", input=ref, created=1.0, split_size=100)
    second = JobRecord(id="b", epoch=2, job_name="wordcount", input=ref, created=2.0, split_size=100)
    journal.started(first, "")
    journal.started(second, "k")
    journal.ended(first)
    journal.close()  # the appends are written, in order, by its writer thread
    restarted = Journal(str(tmp_path))
    assert [(r.id, key) for r, key in restarted.interrupted()] == [("b", "k")]
    restarted.compact()
    assert restarted.interrupted() == []
    restarted.close()


def hostile_journal(path: Path) -> None:
    """Lines that once escaped the parser (ValueError, RecursionError) or reached a status as NaN."""
    path.write_bytes(b"".join([
        b'{"event": "started", "id": "huge", "epoch": ' + b"1" * 5000 + b"}\n",
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        line(started("nan")).replace(b"1700000000.5", b"NaN"),
        line(started("negative", input={"kind": "path", "location": "a", "name": "a", "size": -5})),
        line(started("kind", input={"kind": "exec", "location": "a", "name": "a", "size": 5})),
        line(started("good", epoch=9)),
    ]))


def test_interrupted_skips_hostile_lines_each_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(str(tmp_path))
    assert journal.path is not None
    hostile_journal(journal.path)
    with caplog.at_level(logging.WARNING, logger="actors.master.journal"):
        lost = journal.interrupted()
    assert [(r.id, r.epoch) for r, _ in lost] == [("good", 9)]
    skipped = [r.fields["line"] for r in caplog.records  # type: ignore[attr-defined]
               if r.getMessage() == "journal_line_skipped"]
    assert skipped == [1, 2, 3, 4, 5]


def strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a JSON answer")
    return json.loads(text, parse_constant=refuse)


async def test_the_master_starts_on_a_hostile_journal_and_answers_valid_json(tmp_path: Path, data_root: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    hostile_journal(state / "jobs.journal")
    settings = actor_settings("master", 0, data_root, state_dir=str(state),
                              reducer_urls=("http://127.0.0.1:9",), mapper_urls=("http://127.0.0.1:9",))
    master = await start_actor(settings)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{master.url}/v1/jobs") as response:
                assert response.status == 200
                assert [j["id"] for j in strict_json(await response.text())["jobs"]] == ["good"]
            async with session.get(f"{master.url}/v1/jobs/good") as response:
                status = strict_json(await response.text())
            assert status["state"] == "failed" and status["error"] == RESTARTED, status
            assert status["created"] == 1700000000.5
    finally:
        await master.runner.cleanup()


async def test_the_master_starts_on_a_damaged_journal_and_reports_the_lost_jobs(
    tmp_path: Path, data_root: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    damaged_journal(state / "jobs.journal")
    settings = actor_settings("master", 0, data_root, state_dir=str(state),
                              reducer_urls=("http://127.0.0.1:9",), mapper_urls=("http://127.0.0.1:9",))
    master = await start_actor(settings)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{master.url}/v1/jobs") as response:
                assert response.status == 200
                jobs = {j["id"]: j for j in (await response.json())["jobs"]}
            assert sorted(jobs) == ["good-1", "good-2"]
            for job_id in jobs:
                async with session.get(f"{master.url}/v1/jobs/{job_id}") as response:
                    status = await response.json()
                assert status["state"] == "failed" and status["error"] == RESTARTED, status
    finally:
        await master.runner.cleanup()
    assert (state / "jobs.journal").read_bytes() == b"", "the journal is compacted once the losses are reported"
