"""The remote commands: submit, status, result, cancel and jobs, each one call or two of the client (actors.api).

Everything printed that came from the master (ids, names, keys, values, errors) goes through
:func:`~actors.core.text.escaped` or :func:`~actors.core.text.json_escaped`: a master cannot drive the terminal."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from ..api import AsyncClient, AsyncJobHandle, Inputs, JobStatus, LogLine, Upload
from ..api.logs import LEVELS
from ..api.status import FINISHED_STATES
from ..core.arguments import non_negative_int, positive_int
from ..core.errors import MapReduceError, PeerError
from ..core.text import escaped, json_escaped
from ..inputs.given import local_files
from ..inputs.outdir import SUCCESS
from ..jobs.records import FORMATS
from .counted import tally_lines
from .entries import entry_fields
from .failures import failure_lines
from .progress import ProgressBar, progress_text, size_text

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_WAIT = 3600.0  # seconds `submit --wait` follows a job before giving up (the job itself goes on)
WRITE_BATCH = 1024  # result lines written at a time
EXIT_FAILURE = 1
EXIT_USAGE = 2
SPLIT_FILTERS = ("failed", "running", "all")  # what `status --splits` lists (the master's ?splits= filters)
JOB_STATES = ("queued", "running", "finalizing", *sorted(FINISHED_STATES))

Command = Callable[[argparse.Namespace, AsyncClient], Awaitable[int]]


class UsageError(MapReduceError):
    """The command line asks for something that cannot be sent: a missing file, a malformed URL (exit 2)."""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def add_commands(commands: Any) -> None:
    """Register the remote subcommands on the ``mapreduce`` parser's subparsers (``commands``)."""

    def remote(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
        parser.add_argument("--url", default=None,
                            help=f"the master's URL (default: $MR_URL, else {DEFAULT_URL})")
        parser.add_argument("--token", default=None,
                            help="the public API's token (default: $MR_API_TOKEN; the variable keeps it out of ps)")
        parser.set_defaults(remote=run)
        return parser

    submit = remote("submit", _submit, "submit a job to a running master (local files are uploaded)")
    submit.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="local files, directories (walked) or quoted globs, uploaded together and named as "
                        "`mapreduce run` names them; or http(s):// URLs")
    submit.add_argument("--path", action="append", default=[], metavar="P",
                        help="a file, directory or glob under the master's data root, read there (repeatable)")
    submit.add_argument("--job", default="wordcount", help="the job's registered name (default wordcount)")
    submit.add_argument("--param", action="append", default=[], type=_param, metavar="KEY=VALUE",
                        help="a job parameter (repeatable)")
    submit.add_argument("--output", default=None, metavar="DIR",
                        help="write the result under the master's data root to DIR (part files and _SUCCESS)")
    submit.add_argument("--split-size", type=positive_int, default=None, metavar="BYTES",
                        help="bytes per split (default: the master's setting)")
    submit.add_argument("--format", choices=FORMATS, default=None,
                        help="how the inputs' lines are read: lines (the default), jsonl or csv (docs/jobs.md)")
    submit.add_argument("--max-bad-records", type=non_negative_int, default=None, metavar="N",
                        help="skip up to N records whose parsing or mapper fails, instead of failing the job")
    submit.add_argument("--partitions", type=positive_int, default=None, metavar="N",
                        help="the job's partitions, so part files (default: the master's MR_REDUCER_COUNT)")
    submit.add_argument("--wait", action="store_true", help="follow the job (progress on stderr), print its result")
    submit.add_argument("--timeout", type=_seconds, default=DEFAULT_WAIT,
                        help=f"seconds --wait follows the job (default {DEFAULT_WAIT:g})")
    submit.add_argument("--top", type=positive_int, default=None,
                        help="with --wait: only the first N entries in the job's order (for counts: the most frequent)")
    submit.add_argument("--json", action="store_true", help="the result (or, without --wait, the status) as JSON")
    submit.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")

    status = remote("status", _status, "show a job's state and progress")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="the master's whole status document")
    status.add_argument("--splits", choices=SPLIT_FILTERS, default=None,
                        help="also list these splits, one line each: their byte range and every attempt")

    result = remote("result", _result, "print a finished job's result")
    result.add_argument("id")
    result.add_argument("--top", type=positive_int, default=None,
                        help="only the first N entries in the job's order (for counts: the most frequent)")
    shape = result.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON object")
    shape.add_argument("--ndjson", action="store_true", help="one [key, value] JSON line per entry")

    cancel = remote("cancel", _cancel, "cancel a job")
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true", help="the master's answer as JSON")

    jobs = remote("jobs", _jobs, "list the jobs a master knows (id, state, job, created, error)")
    jobs.add_argument("--json", action="store_true", help="the list as JSON")
    jobs.add_argument("--state", action="append", choices=JOB_STATES, default=None,
                      help="only the jobs in this state (repeatable)")

    _add_logs(remote)


def run(args: argparse.Namespace) -> int:
    """Run the remote command ``args`` names; errors are one ``mapreduce: ...`` line on stderr and a non-zero exit."""
    url = ""
    try:
        url, token = _connection(args)
        return asyncio.run(_with_client(args, url, token))
    except UsageError as error:
        print(f"mapreduce {args.command}: {escaped(error.message)}", file=sys.stderr)
        return EXIT_USAGE
    except PeerError as error:  # no answer, or a broken one: say which master was asked
        print(f"mapreduce: {escaped(error.message)} [master {escaped(url)}]", file=sys.stderr)
        return EXIT_FAILURE
    except MapReduceError as error:
        print(f"mapreduce: {escaped(error.message)}", file=sys.stderr)
        return EXIT_FAILURE


def _connection(args: argparse.Namespace) -> tuple[str, str | None]:
    """The master's URL and the token, from the options or the environment (the client's side: no actor setting)."""
    url = args.url or os.environ.get("MR_URL") or DEFAULT_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"--url {url!r} is not a master's http(s):// URL (e.g. {DEFAULT_URL})")
    if parts.username is not None or parts.password is not None:  # never echo it back: it may hold a secret
        raise UsageError("--url must not carry a user or password; give the API token with --token or "
                         "MR_API_TOKEN")
    token = args.token if args.token is not None else os.environ.get("MR_API_TOKEN", "")
    return url, token or None


async def _with_client(args: argparse.Namespace, url: str, token: str | None) -> int:
    command: Command = args.remote
    async with AsyncClient(url, token) as client:
        return await command(args, client)


def _inputs(args: argparse.Namespace) -> Inputs:
    """What the job reads: the local files the INPUTs name (checked and named here, before any upload), their
    URLs, or the --path entries the master expands under its data root."""
    urls = [given for given in args.inputs if given.lower().startswith(("http://", "https://", "s3://"))]
    local = [given for given in args.inputs if given not in urls]
    if sum(map(bool, (urls, local, args.path))) > 1:
        raise UsageError("give local files, http(s):// or s3:// URLs or --path entries, one kind per job: a job "
                         "reads its inputs from one place")
    if args.path:
        return {"paths": list(args.path)}
    if urls:
        return [{"url": url} for url in urls]
    if not local:
        raise UsageError("give an INPUT (a local file, directory or glob, or an http(s):// or s3:// URL) or --path P")
    try:
        files = local_files(local)
    except MapReduceError as error:
        raise UsageError(error.message) from None
    return [Upload(name, path=path) for path, name in files]


async def _submit(args: argparse.Namespace, client: AsyncClient) -> int:
    handle = await client.submit(args.job, _inputs(args), dict(args.param) if args.param else None, args.output,
                                 split_size=args.split_size, format=args.format,
                                 max_bad_records=args.max_bad_records, partitions=args.partitions)
    if not args.wait:
        print(json_escaped(handle.submitted.raw if handle.submitted else {"id": handle.id}) if args.json
              else escaped(handle.id))
        sys.stdout.flush()
        return 0
    print(f"submitted job {escaped(handle.id)}", file=sys.stderr)
    bar = ProgressBar(sys.stderr, enabled=not args.quiet)
    final = await follow(handle, bar, args.timeout)
    if final.state != "done":
        raise MapReduceError(f"job {final.id} {final.state}: {final.error or 'no reason given'}")
    if args.output is not None:
        written = await handle.output()
        print(json_escaped(written) if args.json else
              f"{escaped(written.get('path'))}: {escaped(len(written.get('parts', [])))} parts, "
              f"{escaped(written.get('keys'))} keys, {size_text(written.get('bytes'))}, and {escaped(SUCCESS)}")
        return 0
    await _print_result(handle, args.top, "json" if args.json else "tsv")
    return 0


async def follow(handle: AsyncJobHandle, bar: ProgressBar, timeout: float) -> JobStatus:
    """Show the job's progress until it finishes (the client's wait calls the bar with each status it reads)."""
    try:
        return await handle.wait(timeout, progress=bar.show)
    except TimeoutError as error:  # "job ID is still STATE after N s"
        raise MapReduceError(f"{error} (--timeout); it goes on: see `mapreduce status {handle.id}`") from None
    finally:
        bar.close()


async def _status(args: argparse.Namespace, client: AsyncClient) -> int:
    status = await client.job(args.id).status()
    if args.json:
        print(json_escaped(status.raw))
        return 0
    raw = status.raw
    source = raw.get("input") if isinstance(raw.get("input"), dict) else {}
    attempts = raw.get("attempts") if isinstance(raw.get("attempts"), dict) else {}
    lines = [f"job {escaped(status.id)} ({escaped(status.job)}): {escaped(status.state)}",
             f"progress: {progress_text(status)}"]
    if source:
        lines.append(f"input: {escaped(source.get('name'))} ({size_text(source.get('size', 0))}, "
                     f"{escaped(source.get('kind'))})")
    if raw.get("partitions"):
        order = " (total order)" if raw.get("partitioner") == "total_order" else ""
        lines.append(f"partitions: {escaped(raw['partitions'])}{order}")
    sample: dict[str, Any] = raw["sample"] if isinstance(raw.get("sample"), dict) else {}
    phases: dict[str, Any] = raw["phases"] if isinstance(raw.get("phases"), dict) else {}
    if sample:
        lines.append(f"sample: {escaped(sample.get('keys', 0))} keys from {escaped(sample.get('places', 0))} "
                     f"places, {escaped(sample.get('cuts', 0))} cut points, {escaped(phases.get('sample_ms', 0))} ms")
    if attempts:
        lines.append(f"attempts: {escaped(attempts.get('started', 0))} started, "
                     f"{escaped(attempts.get('retries', 0))} retries")
    lines += failure_lines(raw)
    lines += tally_lines(raw)
    if status.error:
        lines.append(f"error: {escaped(status.error)}")
    print("\n".join(lines))
    if args.splits is not None:
        await _print_splits(client.job(args.id), args.splits)
    return 0


async def _print_splits(handle: AsyncJobHandle, which: str) -> None:
    """Every split ``which`` names, a page of the master's at a time: a header, then one line each."""
    offset, header = 0, True
    while True:
        page = await handle.splits(which, offset)
        items = page["items"]
        if header:
            print(f"splits ({escaped(which)}): {escaped(page['matching'])}")
            if items:
                print("SPLIT\tBYTES\tSTATE\tATTEMPTS")
            header = False
        print("".join(_split_line(item) + "\n" for item in items), end="")
        offset += len(items)
        if not items or offset >= page["matching"]:
            break
    sys.stdout.flush()


def _split_line(item: Any) -> str:
    """``3<TAB>1024-2048<TAB>done<TAB>#1 mapper-0 failed (its cause), #2 mapper-1 done``."""
    item = item if isinstance(item, dict) else {}
    attempts = item.get("attempts") if isinstance(item.get("attempts"), list) else []
    shown = []
    for a in attempts:
        a = a if isinstance(a, dict) else {}
        cause = f" ({a['cause']})" if a.get("cause") else ""
        backup = " backup" if a.get("backup") else ""
        shown.append(f"#{a.get('attempt')} {a.get('mapper')} {a.get('state')}{backup}{cause}")
    state = "done" if item.get("done") else "running" if any(a.get("state") == "running" for a in attempts
                                                              if isinstance(a, dict)) else "pending"
    fields = [item.get("split"), f"{item.get('start')}-{item.get('end')}", state, ", ".join(shown) or "-"]
    return "\t".join(escaped(f) for f in fields)


async def _result(args: argparse.Namespace, client: AsyncClient) -> int:
    await _print_result(client.job(args.id), args.top, "json" if args.json else "ndjson" if args.ndjson else "tsv")
    return 0


async def _print_result(handle: AsyncJobHandle, top: int | None, shape: str) -> None:
    """The result in the server's order (the job's own: most significant first): all of it, or its first ``top``."""
    if shape == "json":
        print(json_escaped(await handle.result(top=top)))
    elif top is not None:
        _write_entries((await handle.result(top=top)).items(), shape)
    else:
        batch: list[tuple[Any, Any]] = []
        async for entry in handle.iter_result():
            batch.append(entry)
            if len(batch) == WRITE_BATCH:
                _write_entries(batch, shape)
                batch.clear()
        _write_entries(batch, shape)
    sys.stdout.flush()  # a closed pipe shows here, where the caller exits quietly, not at the interpreter's exit


def _write_entries(entries: Iterable[tuple[Any, Any]], shape: str) -> None:
    if shape == "ndjson":
        sys.stdout.write("".join(json_escaped([key, value]) + "\n" for key, value in entries))
        return
    # As `mapreduce run` prints them: `count<TAB>word`, or `word<TAB>a.txt b.txt` for a list value.
    sys.stdout.write("".join("\t".join(map(escaped, entry_fields(key, value))) + "\n" for key, value in entries))


async def _cancel(args: argparse.Namespace, client: AsyncClient) -> int:
    status = await client.job(args.id).cancel()
    print(json_escaped(status.raw) if args.json else f"job {escaped(status.id)}: {escaped(status.state)}")
    return 0


async def _jobs(args: argparse.Namespace, client: AsyncClient) -> int:
    jobs = sorted(await client.jobs(), key=lambda s: _created(s.raw))
    if args.state:
        jobs = [s for s in jobs if s.state in args.state]
    if args.json:
        print(json_escaped([s.raw for s in jobs]))
        return 0
    if jobs:
        print("ID\tSTATE\tJOB\tCREATED\tERROR")
    for s in jobs:
        created = _created(s.raw)
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created)) if created else "-"
        fields = [s.id, s.state, s.job, when, (s.error or "").replace("\n", " ")]
        print("\t".join(map(escaped, fields)).rstrip("\t"))
    return 0


def _created(raw: dict[str, Any]) -> float:
    value = raw.get("created")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


# ---- mapreduce logs ----------------------------------------------------------------------------------------------


def _add_logs(remote: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    logs = remote("logs", _logs, "print a job's log lines from every actor, in time order (user code's tracebacks "
                  "included)")
    logs.add_argument("id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the job ends")
    logs.add_argument("--actor", default=None, metavar="NAME", help="only this actor's lines (e.g. mapper-1)")
    logs.add_argument("--level", choices=LEVELS, default=None, help="only lines at this level or above")
    logs.add_argument("--json", action="store_true", help="one JSON object a line, as the master sends them")


async def _logs(args: argparse.Namespace, client: AsyncClient) -> int:
    async for line in client.logs(args.id, follow=args.follow, actor=args.actor, level=args.level):
        sys.stdout.write(json_escaped(dataclasses.asdict(line)) + "\n" if args.json else log_text(line))
        sys.stdout.flush()  # a followed job's lines show as they come, also through a pipe
    return 0


def log_text(line: LogLine) -> str:
    """``TIME ACTOR LEVEL EVENT key=value ...``, then each multi-line text (a traceback) indented below it."""
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(line.time)) + f".{int(line.time % 1 * 1000):03d}"
    head = [when, escaped(line.actor), escaped(line.level.upper()), escaped(line.event)]
    below = []
    for key, value in line.fields.items():
        if isinstance(value, str) and "\n" in value:
            below.append((key, value))
        elif isinstance(value, str) and value and " " not in value:
            head.append(f"{escaped(key)}={escaped(value)}")
        else:
            head.append(f"{escaped(key)}={json_escaped(value)}")
    text = " ".join(head) + "\n"
    for key, value in below:
        text += f"  {escaped(key)}:\n" + "".join(f"    {escaped(part)}\n" for part in value.rstrip("\n").split("\n"))
    return text
