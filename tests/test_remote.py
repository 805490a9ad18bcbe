"""The remote commands as a user meets them: `python -m actors submit|status|result|cancel|jobs` as processes
against real actors on loopback, results compared with the sequential oracle."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pytest

from actors.api import AsyncClient, JobStatus, Progress
from actors.remote.progress import ProgressBar, progress_bar, progress_text, size_text
from actors.sequential import run_sequential, run_sequential_inputs

from .conftest import Cluster, ClusterFactory
from .support import held_url as held_text_url

REPO = Path(__file__).resolve().parent.parent
API_TOKEN = "remote-api-secret-5d1e"
MiB = 1024 * 1024
TEXT = "".join(f"the quick brown fox {i % 97} jumps over the lazy dog {i % 13}\nthe dog barks\n" for i in range(3000))


def oracle(text: str) -> dict[str, Any]:
    return run_sequential("wordcount", text.encode())


@dataclass
class Done:
    code: int
    out: str
    err: str


def command_env(**extra: str) -> dict[str, str]:
    # Neither the caller's MR_URL nor its MR_API_TOKEN may leak into a test: each test says what it sends.
    env = {k: v for k, v in os.environ.items() if k not in ("MR_URL", "MR_API_TOKEN")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


class Token(TypedDict, total=False):
    """The token variable a command may be given (typed, so ``**token`` cannot be taken for ``timeout``)."""

    MR_API_TOKEN: str


async def mapreduce(*args: str, timeout: float = 90, cwd: Path | None = None, **env: str) -> Done:
    """Run `python -m actors ARGS` (in ``cwd``) without blocking the loop the actors serve on; bounded."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "actors", *args, env=command_env(**env), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def finished(url: str, job_id: str, token: str | None = None) -> str:
    """Wait (bounded) for a job to finish, through the client; answer its final state."""
    async with AsyncClient(url, token) as client:
        return (await client.job(job_id).wait(60)).state


def tsv(out: str) -> list[tuple[str, int]]:
    """`count<TAB>word` lines as (word, count) in their printed order."""
    entries = []
    for line in out.splitlines():
        count, word = line.split("\t")
        entries.append((word, int(count)))
    return entries


def top(result: dict[str, Any], n: int) -> list[tuple[str, Any]]:
    return sorted(result.items(), key=lambda item: (-item[1], item[0]))[:n]


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = tmp_path / "book.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
async def guarded(make_cluster: ClusterFactory) -> Cluster:
    """A cluster whose public API requires API_TOKEN."""
    return await make_cluster(api_token=API_TOKEN)


async def test_submit_wait_uploads_and_prints_the_oracles_counts(guarded: Cluster, book: Path) -> None:
    done = await mapreduce("submit", "--url", guarded.url, "--wait", "--split-size", "8192", str(book),
                           MR_API_TOKEN=API_TOKEN)
    assert done.code == 0, done.err
    entries = tsv(done.out)
    assert dict(entries) == oracle(TEXT)
    assert entries == top(dict(entries), len(entries))  # most frequent first, ties by word, as `mapreduce run`
    # Progress on stderr, one line per change (stderr is a pipe here), ending at done and 100%.
    lines = done.err.splitlines()
    assert lines[0].startswith("submitted job ")
    bars = [line for line in lines if line.startswith("[")]
    assert bars and bars[-1].startswith("[" + "#" * 24 + "] done: "), done.err
    assert bars[-1].endswith(f"/{size_text(len(TEXT.encode()))} (100%)") and "splits" in bars[-1]
    assert "\r" not in done.err and len(bars) == len(set(bars))  # no redraws into a log, no repeated lines
    assert API_TOKEN not in done.out + done.err


async def test_submit_of_a_gzip_file_counts_its_text_as_run_does(guarded: Cluster, tmp_path: Path) -> None:
    """`mapreduce submit book.txt.gz` was a done job counting the compressed bytes; `mapreduce run` decompressed."""
    packed = tmp_path / "book.txt.gz"
    packed.write_bytes(gzip.compress(TEXT.encode()))
    done = await mapreduce("submit", "--url", guarded.url, "--wait", "--json", "--quiet", str(packed),
                           MR_API_TOKEN=API_TOKEN)
    assert done.code == 0, done.err
    assert json.loads(done.out) == oracle(TEXT)


async def test_submit_json_top_and_every_follow_up_command(guarded: Cluster, book: Path) -> None:
    url, token = guarded.url, Token(MR_API_TOKEN=API_TOKEN)
    expected = oracle(TEXT)
    done = await mapreduce("submit", "--url", url, "--wait", "--json", "--top", "3", "--quiet", str(book), **token)
    assert done.code == 0, done.err
    assert json.loads(done.out) == dict(top(expected, 3)) and list(json.loads(done.out)) == [k for k, _ in
                                                                                            top(expected, 3)]
    assert "[" not in done.err  # --quiet: no progress

    # Without --wait: the id alone, or with --json the submit's status document.
    done = await mapreduce("submit", "--url", url, "--json", str(book), **token)
    assert done.code == 0, done.err
    submitted = json.loads(done.out)
    assert submitted["state"] in {"queued", "running"} and submitted["job"] == "wordcount"
    job_id = submitted["id"]
    assert await finished(url, job_id, API_TOKEN) == "done"

    done = await mapreduce("submit", str(book), MR_URL=url, **token)  # the URL from MR_URL
    assert done.code == 0, done.err
    assert done.out.strip() and "\n" not in done.out.strip() and done.err == ""
    other = done.out.strip()

    status = await mapreduce("status", job_id, "--url", url, **token)
    assert status.code == 0, status.err
    assert status.out.splitlines()[0] == f"job {job_id} (wordcount): done"
    assert f"input: book.txt ({size_text(len(TEXT.encode()))}, served)" in status.out
    assert "partitions: 2" in status.out and "(100%)" in status.out
    as_json = json.loads((await mapreduce("status", job_id, "--json", "--url", url, **token)).out)
    assert as_json["id"] == job_id and as_json["progress"]["bytes_total"] == len(TEXT.encode())

    result = await mapreduce("result", job_id, "--url", url, **token)
    assert result.code == 0 and dict(tsv(result.out)) == expected
    ndjson = await mapreduce("result", job_id, "--ndjson", "--url", url, **token)
    lines = [json.loads(line) for line in ndjson.out.splitlines()]
    assert all(isinstance(e, list) and len(e) == 2 for e in lines) and dict(lines) == expected
    assert [k for k, _ in lines] == [k for k, _ in top(expected, len(expected))]
    two = await mapreduce("result", job_id, "--top", "2", "--url", url, **token)
    assert tsv(two.out) == top(expected, 2)
    as_obj = await mapreduce("result", job_id, "--json", "--url", url, **token)
    assert json.loads(as_obj.out) == expected

    jobs = await mapreduce("jobs", "--url", url, **token)
    assert jobs.code == 0, jobs.err
    rows = {line.split("\t")[0]: line.split("\t") for line in jobs.out.splitlines()}
    assert job_id in rows and other in rows and rows[job_id][1:3] == ["done", "wordcount"]
    listed = json.loads((await mapreduce("jobs", "--json", "--url", url, **token)).out)
    assert {entry["id"] for entry in listed} >= {job_id, other}
    assert API_TOKEN not in "".join([done.out, status.out, jobs.out])


@pytest.fixture
async def held_url() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A URL input whose every read is held until the test ends: a job on it is certainly running."""
    async with held_text_url(TEXT.encode()) as held:
        yield held


async def test_cancel_a_job_another_command_is_waiting_for(make_cluster: ClusterFactory,
                                                          held_url: tuple[str, asyncio.Event]) -> None:
    url, reading = held_url
    cluster = await make_cluster(allow_private_urls=True)
    waiting = asyncio.create_task(mapreduce("submit", "--url", cluster.url, "--wait", url))
    try:
        async with asyncio.timeout(60):
            await reading.wait()  # a mapper is inside the job's input: it is running
        listed = await mapreduce("jobs", "--json", "--url", cluster.url)
        (job_id,) = [entry["id"] for entry in json.loads(listed.out)]
        early = await mapreduce("result", job_id, "--url", cluster.url)
        assert early.code == 1 and early.err == f"mapreduce: job {job_id} is running, no result\n"
        cancelled = await mapreduce("cancel", job_id, "--url", cluster.url)
        assert cancelled.code == 0, cancelled.err
        assert cancelled.out == f"job {job_id}: cancelled\n"
        done = await asyncio.wait_for(waiting, 60)
    finally:
        if not waiting.done():
            waiting.cancel()
    assert done.code == 1 and done.out == ""
    assert done.err.splitlines()[-1].startswith(f"mapreduce: job {job_id} cancelled")
    after = await mapreduce("result", job_id, "--url", cluster.url)
    assert after.code == 1 and "is cancelled, no result" in after.err


async def test_a_wrong_or_missing_token_is_refused_and_never_shown(guarded: Cluster, book: Path) -> None:
    for how in (Token(MR_API_TOKEN="not-the-token"), Token()):
        for argv in (["jobs"], ["submit", "--wait", str(book)], ["status", "x"]):
            done = await mapreduce(*argv, "--url", guarded.url, **how)
            assert done.code == 1, (argv, done)
            assert done.err.startswith("mapreduce: ") and "requires the API token" in done.err, done.err
            assert len(done.err.splitlines()) == 1 and done.out == ""
            assert "not-the-token" not in done.err
    # --token on the command line wins over the environment, and is not echoed either.
    done = await mapreduce("jobs", "--url", guarded.url, "--token", "cli-wrong-token", MR_API_TOKEN=API_TOKEN)
    assert done.code == 1 and "requires the API token" in done.err and "cli-wrong-token" not in done.err
    done = await mapreduce("jobs", "--url", guarded.url, "--token", API_TOKEN, MR_API_TOKEN="wrong")
    assert done.code == 0, done.err


async def test_unknown_job_ids_and_refused_submissions_print_the_servers_message(
        make_cluster: ClusterFactory, book: Path, data_root: Path) -> None:
    cluster = await make_cluster()
    url = cluster.url
    for argv in (["status", "nosuchid"], ["result", "nosuchid"], ["cancel", "nosuchid"], ["result", "../cluster"]):
        done = await mapreduce(*argv, "--url", url)
        assert done.code == 1 and done.out == "", (argv, done)
        assert done.err.startswith("mapreduce: unknown job id") and len(done.err.splitlines()) == 1, done.err
    refused = {
        ("--job", "nosuchjob", str(book)): "unknown job 'nosuchjob'",
        ("--path", "../etc/passwd"): "'..'",
        ("--path", "book.txt", "--param", "k=v"): "job 'wordcount' has no parameter k",
        (str(book), "--param", "k=v"): "job 'wordcount' has no parameter k",  # refused before it is uploaded
        (str(book), "--output", "../out"): "'..'",
    }
    for words, message in refused.items():
        done = await mapreduce("submit", "--url", url, *words)
        assert done.code == 1, (words, done)
        assert done.err.startswith("mapreduce: ") and message in done.err, (words, done.err)
    assert json.loads((await mapreduce("jobs", "--json", "--url", url)).out) == []  # nothing was started
    (data_root / "book.txt").write_text(TEXT)
    done = await mapreduce("submit", "--url", url, "--path", "book.txt", "--wait", "--json")
    assert done.code == 0 and json.loads(done.out) == oracle(TEXT), done.err


async def test_an_unreachable_master_is_a_clear_error_in_bounded_time(book: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on (bound, never listening: connections are refused)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        for argv in (["jobs"], ["status", "abc"], ["submit", "--wait", str(book)]):
            began = time.monotonic()
            done = await mapreduce(*argv, "--url", f"http://127.0.0.1:{port}", timeout=60)
            assert time.monotonic() - began < 30
            assert done.code == 1 and done.out == "", done
            assert "no answer from the master" in done.err and f"[master http://127.0.0.1:{port}]" in done.err
            assert len(done.err.splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["submit", "/nonexistent/book.txt"], "/nonexistent/book.txt is not a readable file"),
    (["submit", "/nonexistent/*.txt"], "/nonexistent is not a directory"),
    (["submit", "x.txt", "https://example.org/y.txt"], "one kind per job"),
    (["submit", "x.txt", "--path", "y.txt"], "one kind per job"),
    (["status", "x", "--splits", "some"], "invalid choice: 'some'"),
    (["jobs", "--state", "sleeping"], "invalid choice: 'sleeping'"),
    (["submit"], "give an INPUT"),
    (["submit", "--url", "ftp://127.0.0.1:1", "x"], "is not a master's http(s):// URL"),
    (["jobs", "--url", "127.0.0.1:8080"], "is not a master's http(s):// URL"),
    (["jobs", "--url", "http://me:hunter2@127.0.0.1:9"], "must not carry a user or password"),
    (["submit", "--param", "novalue", "x"], "'novalue' is not KEY=VALUE"),
    (["submit", "--top", "0", "x"], "'0' must be a positive integer"),
    (["submit", "--timeout", "nan", "x"], "must be a positive number of seconds"),
    (["result", "x", "--json", "--ndjson"], "not allowed with argument"),
])
async def test_usage_errors_exit_2_before_any_request(argv: list[str], message: str) -> None:
    done = await mapreduce(*argv, MR_URL="http://127.0.0.1:9")  # nothing listens there; nothing is asked
    assert done.code == 2, done
    assert message in done.err and "no answer" not in done.err and done.out == ""
    assert "hunter2" not in done.err


async def test_a_closed_pipe_ends_the_result_quietly(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    cluster = await make_cluster()
    text = " ".join(f"word{i}" for i in range(30_000))  # a result far larger than a pipe's buffer
    (tmp_path / "many.txt").write_text(text)
    done = await mapreduce("submit", "--url", cluster.url, "--quiet", str(tmp_path / "many.txt"))
    job_id = done.out.strip()
    assert await finished(cluster.url, job_id) == "done"
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", '"$@" | head -n 1; echo "exit=${PIPESTATUS[0]}" >&2', "bash",
        sys.executable, "-m", "actors", "result", job_id, "--url", cluster.url,
        env=command_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert out.decode().count("\n") == 1 and out.decode().startswith("1\tword")
    assert err.decode() == "exit=141\n"  # 128 + SIGPIPE, and no traceback


def status(state: str, **progress: int) -> JobStatus:
    return JobStatus(id="j1", state=state, job="wordcount", progress=Progress(**progress))


def test_progress_text_and_bar_say_what_the_status_says() -> None:
    assert progress_text(status("queued")) == "not planned yet"
    assert progress_bar(status("queued")) == "[" + "-" * 24 + "] queued"
    half = status("running", splits_done=3, splits_total=8, bytes_done=2 * MiB, bytes_total=4 * MiB)
    assert progress_bar(half) == "[" + "#" * 12 + "-" * 12 + "] running: 3/8 splits, 2.0 MiB/4.0 MiB (50%)"
    unknown_size = status("running", splits_done=1, splits_total=4)  # an input whose size is not known
    assert progress_bar(unknown_size).startswith("[" + "#" * 6 + "-" * 18 + "] running: 1/4 splits")
    # Binary units, as the status page and the settings show sizes.
    assert [size_text(n) for n in (0, 1000, 1024, 1_234_567, 5 * 10**12, 3 * 1024**5)] == [
        "0 B", "1000 B", "1.0 KiB", "1.2 MiB", "4.5 TiB", "3072.0 TiB"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_redraws_on_a_terminal_and_prints_changes_only_on_a_pipe() -> None:
    updates = [status("running", splits_done=d, splits_total=2, bytes_done=d, bytes_total=2) for d in (0, 0, 1, 2)]
    pipe = io.StringIO()
    bar = ProgressBar(pipe)
    for update in updates:
        bar.show(update)
    bar.close()
    assert pipe.getvalue().splitlines() == [progress_bar(updates[0]), progress_bar(updates[2]),
                                            progress_bar(updates[3])]
    terminal = Terminal()
    bar = ProgressBar(terminal)
    for update in updates:
        bar.show(update)
    bar.close()
    assert terminal.getvalue() == "".join(f"\r{progress_bar(u)}\x1b[K" for u in (updates[0], *updates[2:])) + "\n"
    quiet = io.StringIO()
    bar = ProgressBar(quiet, enabled=False)
    bar.show(updates[3])
    bar.close()
    assert quiet.getvalue() == ""


DOCS = {"docs/a.txt": "To be, or not to be:\nthat is the question.\n" * 30, "docs/notes.md": "Not counted by *.txt\n",
        "docs/sub/b.txt": "Whether 'tis nobler in the mind\n" * 20, "docs/sub/c.txt": "to suffer THE slings\n"}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A directory tree of four files on the client's side (tmp_path/local/docs)."""
    for name, text in DOCS.items():
        (tmp_path / "local" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "local" / name).write_text(text)
    return tmp_path / "local" / "docs"


async def run_locally(*args: str, cwd: Path | None = None) -> Done:
    """`mapreduce run` on its own local cluster, shaped as the test clusters are (2 mappers, 2 reducers)."""
    done = await mapreduce("run", "--static", "--mappers", "2", "--reducers", "2", *args, timeout=180, cwd=cwd)
    assert done.code == 0, done.err
    return done


async def test_submit_of_a_directory_with_params_and_output_writes_the_parts_run_writes(
        make_cluster: ClusterFactory, data_root: Path, docs: Path, tmp_path: Path) -> None:
    """An uploaded directory with --param and --output: the same part files, byte for byte, as `mapreduce run`
    over the same directory with the same options."""
    cluster = await make_cluster()
    options = ["--param", "lower=true", "--param", "strip_punctuation=true", "--split-size", "4096",
               "--partitions", "3"]
    done = await mapreduce("submit", "--url", cluster.url, "--wait", "--output", "out", *options, str(docs))
    assert done.code == 0, done.err
    assert done.out.startswith("out: 3 parts, ") and done.out.endswith(" and _SUCCESS\n"), done.out
    ran = await run_locally("--output", str(tmp_path / "ran"), *options, str(docs))
    assert f"from 4 inputs under {docs.parent}" in ran.err  # was "from 1 inputs": the directory, not its files
    parts = [sorted(p.name for p in (root.glob("part-*.jsonl"))) for root in (data_root / "out", tmp_path / "ran")]
    assert parts[0] == parts[1] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]  # --partitions 3
    for part in parts[0]:
        assert (data_root / "out" / part).read_bytes() == (tmp_path / "ran" / part).read_bytes()
    entries = [json.loads(line) for part in parts[0] for line in (data_root / "out" / part).read_text().splitlines()]
    assert dict(entries) == run_sequential_inputs("wordcount", [(k, v.encode()) for k, v in DOCS.items()],
                                                  {"lower": "true", "strip_punctuation": "true"})


async def test_submit_of_a_directory_and_a_glob_prints_what_run_prints(make_cluster: ClusterFactory,
                                                                       docs: Path) -> None:
    """Inputs named as `run` names them (by their paths as given), and an inverted index printed key first:
    `word<TAB>a.txt sub/b.txt`."""
    cluster = await make_cluster()
    given = ["--job", "inverted_index", "sub", "*.txt"]
    done = await mapreduce("submit", "--url", cluster.url, "--wait", "--quiet", *given, cwd=docs)
    assert done.code == 0, done.err
    ran = await run_locally(*given, cwd=docs)
    assert done.out == ran.out
    named = [(name, DOCS[f"docs/{name}"].encode()) for name in ("sub/b.txt", "sub/c.txt", "a.txt")]
    expected = run_sequential_inputs("inverted_index", named)
    assert dict(line.split("\t") for line in done.out.splitlines()) == {k: " ".join(v) for k, v in expected.items()}
    assert "to\ta.txt sub/c.txt\n" in done.out
    listed = await mapreduce("jobs", "--url", cluster.url, "--state", "done")
    assert listed.code == 0 and listed.out.splitlines()[0] == "ID\tSTATE\tJOB\tCREATED\tERROR"
    ((job_id, state, job, _),) = [line.split("\t") for line in listed.out.splitlines()[1:]]
    assert (state, job) == ("done", "inverted_index")
    assert (await mapreduce("jobs", "--url", cluster.url, "--state", "failed", "--state", "queued")).out == ""
    shown = await mapreduce("status", job_id, "--url", cluster.url, "--splits", "all")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    at = lines.index("splits (all): 3")
    assert lines[at + 1] == "SPLIT\tBYTES\tSTATE\tATTEMPTS"
    splits = [line.split("\t") for line in lines[at + 2:]]
    assert [s[0] for s in splits] == ["0", "1", "2"] and all(s[2] == "done" for s in splits)
    assert all(s[3].startswith("#1 mapper-") and s[3].endswith(" done") for s in splits), splits
    failed = await mapreduce("status", job_id, "--url", cluster.url, "--splits", "failed")
    assert failed.out.splitlines()[-1] == "splits (failed): 0"


async def test_submit_path_entries_are_read_on_the_masters_data_root(make_cluster: ClusterFactory,
                                                                    data_root: Path) -> None:
    cluster = await make_cluster()
    for name, text in DOCS.items():
        (data_root / name).parent.mkdir(parents=True, exist_ok=True)
        (data_root / name).write_text(text)
    done = await mapreduce("submit", "--url", cluster.url, "--wait", "--json", "--path", "docs/sub",
                           "--path", "docs/*.md", "--job", "inverted_index")
    assert done.code == 0, done.err
    named = [(name, DOCS[name].encode()) for name in ("docs/sub/b.txt", "docs/sub/c.txt", "docs/notes.md")]
    assert json.loads(done.out) == run_sequential_inputs("inverted_index", named)
