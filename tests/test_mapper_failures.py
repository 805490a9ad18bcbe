"""The mapper's assignment answer: which failures it reports as retriable, and which fail the job at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.core import wire
from actors.core.messages import Assignment, Progress, SplitDone, SplitFailed, from_wire, to_wire
from actors.inputs.ref import PATH, SERVED, URL

from .conftest import TOKEN, Cluster, ClusterFactory

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cbor"}


async def answer(cluster: Cluster, kind: str, location: str, size: int = 100, inline: bytes = b"") -> list[Any]:
    """Every message of one assignment's answer stream."""
    assignment = Assignment(job="j1", epoch=1, split=0, attempt=1, job_name="wordcount", input_kind=kind,
                            input_location=location, input_name="in", start=0, end=size, partitions=1,
                            only_partitions=[], inline=inline)
    body = wire.encode(to_wire(assignment))
    async with cluster.session.post(cluster.mappers[0].url + "/internal/v1/assign", data=body,
                                    headers=AUTH) as response:
        assert response.status == 200, await response.text()
        data = await response.read()
    messages = []
    while data:
        length = wire.frame_length(data[:wire.PREFIX], 1 << 20)
        raw = wire.decode(data[wire.PREFIX:wire.PREFIX + length], 1 << 20)
        messages.append(from_wire(raw, Progress, SplitDone, SplitFailed))
        data = data[wire.PREFIX + length:]
    return messages


@pytest.mark.parametrize(("kind", "location", "cause"), [
    (PATH, "missing.txt", "not a readable file"),
    (PATH, "../outside.txt", "without '..'"),
    (URL, "http://127.0.0.1:9/input.txt", "127.0.0.1"),  # loopback: the address policy refuses it
])
async def test_an_input_error_is_not_retriable(make_cluster: ClusterFactory, kind: str, location: str,
                                               cause: str) -> None:
    # Another mapper would meet the same refusal: burning MR_MAX_ATTEMPTS on it only delays the job's failure.
    cluster = await make_cluster(mappers=1, reducers=1)
    *_, last = await answer(cluster, kind, location)
    assert isinstance(last, SplitFailed), last
    assert cause in last.cause
    assert last.retriable is False


async def test_a_readable_path_is_mapped(make_cluster: ClusterFactory, data_root: Path) -> None:
    (data_root / "book.txt").write_text("a b a\n", encoding="utf-8")
    cluster = await make_cluster(mappers=1, reducers=1)
    *_, last = await answer(cluster, PATH, "book.txt", size=6)
    assert isinstance(last, SplitDone) and last.bytes_read == 6


async def test_an_inline_input_is_mapped_without_a_request_and_answered_by_its_report_alone(
        make_cluster: ClusterFactory) -> None:
    """A small text inside its assignment is read from there (the served location here answers nothing), and a
    split this quick sends no heartbeat: its answer is the SPLITDONE frame alone (PROGRESS_GAP)."""
    cluster = await make_cluster(mappers=1, reducers=1)
    text = b"a b a\nc a\n"
    messages = await answer(cluster, SERVED, "http://127.0.0.1:9/internal/v1/inputs/gone", size=len(text),
                            inline=text)
    assert len(messages) == 1 and isinstance(messages[0], SplitDone), messages
    assert (messages[0].bytes_read, messages[0].keys) == (len(text), 3)
