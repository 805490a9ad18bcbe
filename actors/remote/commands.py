"""The remote commands: submit, status, result, cancel and jobs, each one call or two of the client (actors.api).

Everything printed that came from the master (ids, names, keys, values, errors) goes through
:func:`~actors.core.text.escaped` or :func:`~actors.core.text.json_escaped`: a master cannot drive the terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..api import AsyncClient, AsyncJobHandle, JobStatus
from ..api.inputs import Input
from ..core.arguments import positive_int
from ..core.errors import Conflict, Gone, MapReduceError, PeerError
from ..core.text import escaped, json_escaped
from .progress import ProgressBar, progress_text, size_text

DEFAULT_URL = "http://127.0.0.1:8080"
POLL = 1.0  # seconds one progress update may wait on the server's long poll (it answers at once when the job ends)
DEFAULT_WAIT = 3600.0  # seconds `submit --wait` follows a job before giving up (the job itself goes on)
WRITE_BATCH = 1024  # result lines written at a time
EXIT_FAILURE = 1
EXIT_USAGE = 2

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

    submit = remote("submit", _submit, "submit a job to a running master (files are uploaded)")
    submit.add_argument("inputs", nargs="*", metavar="INPUT", help="a local file to upload, or an http(s):// URL")
    submit.add_argument("--path", action="append", default=[], metavar="P",
                        help="a file under the master's data root (as {\"path\": P})")
    submit.add_argument("--job", default="wordcount", help="the job's registered name (default wordcount)")
    submit.add_argument("--param", action="append", default=[], type=_param, metavar="KEY=VALUE",
                        help="a job parameter (sent only if given)")
    submit.add_argument("--split-size", type=positive_int, default=None, metavar="BYTES",
                        help="bytes per split (default: the master's setting)")
    submit.add_argument("--wait", action="store_true", help="follow the job (progress on stderr), print its result")
    submit.add_argument("--timeout", type=_seconds, default=DEFAULT_WAIT,
                        help=f"seconds --wait follows the job (default {DEFAULT_WAIT:g})")
    submit.add_argument("--top", type=positive_int, default=None, help="with --wait: only the N first entries")
    submit.add_argument("--json", action="store_true", help="the result (or, without --wait, the status) as JSON")
    submit.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")

    status = remote("status", _status, "show a job's state and progress")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="the master's whole status document")

    result = remote("result", _result, "print a finished job's result")
    result.add_argument("id")
    result.add_argument("--top", type=positive_int, default=None, help="only the N first entries")
    shape = result.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON object")
    shape.add_argument("--ndjson", action="store_true", help="one [key, value] JSON line per entry")

    cancel = remote("cancel", _cancel, "cancel a job")
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true", help="the master's answer as JSON")

    jobs = remote("jobs", _jobs, "list the jobs a master knows (id, state, job, created, error)")
    jobs.add_argument("--json", action="store_true", help="the list as JSON")


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


def _inputs(args: argparse.Namespace) -> list[Input]:
    """Each INPUT as the client takes it: a URL reference, or a local file checked here, before any upload."""
    inputs: list[Input] = []
    for given in args.inputs:
        if given.lower().startswith(("http://", "https://", "s3://")):  # read by the cluster, not uploaded
            inputs.append({"url": given})
            continue
        path = Path(given)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "is not a file"
            raise UsageError(f"{given} {what}; an INPUT is a local file to upload or an http(s):// URL "
                             "(--path P names a file under the master's data root)")
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise UsageError(f"cannot read {given}: {os.strerror(exc.errno or 0).lower()}") from None
        inputs.append(path)
    inputs.extend({"path": p} for p in args.path)
    if not inputs:
        raise UsageError("give an INPUT (a local file or an http(s):// URL) or --path P")
    return inputs


async def _submit(args: argparse.Namespace, client: AsyncClient) -> int:
    # The list as given: the client refuses more than one input per job with the server's rule in its message.
    params = dict(args.param) if args.param else None
    handle = await client.submit(args.job, _inputs(args), params, split_size=args.split_size)
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
    await _print_result(handle, args.top, "json" if args.json else "tsv")
    return 0


async def follow(handle: AsyncJobHandle, bar: ProgressBar, timeout: float) -> JobStatus:
    """Show the job's progress until it finishes; the server's long poll answers as soon as it does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            status = await handle.status()
            bar.show(status)
            if status.finished:
                return status
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise MapReduceError(f"job {handle.id} is still {status.state} after {timeout:g} s (--timeout); "
                                     f"it goes on: see `mapreduce status {handle.id}`")
            # Conflict: not done yet, or failed/cancelled; Gone: done, result dropped. The next status tells which.
            with contextlib.suppress(Conflict, Gone):
                await handle.result(top=1, wait=min(POLL, remaining))
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
        lines.append(f"partitions: {escaped(raw['partitions'])}")
    if attempts:
        lines.append(f"attempts: {escaped(attempts.get('started', 0))} started, "
                     f"{escaped(attempts.get('retries', 0))} retries")
    if status.error:
        lines.append(f"error: {escaped(status.error)}")
    print("\n".join(lines))
    return 0


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
        batch: list[tuple[str, Any]] = []
        async for entry in handle.iter_result():
            batch.append(entry)
            if len(batch) == WRITE_BATCH:
                _write_entries(batch, shape)
                batch.clear()
        _write_entries(batch, shape)
    sys.stdout.flush()  # a closed pipe shows here, where the caller exits quietly, not at the interpreter's exit


def _write_entries(entries: Iterable[tuple[str, Any]], shape: str) -> None:
    if shape == "ndjson":
        sys.stdout.write("".join(json_escaped([key, value]) + "\n" for key, value in entries))
        return
    lines = []
    for key, value in entries:  # `count<TAB>word`, as `mapreduce run` prints; a list value space-separated
        text = " ".join(map(str, value)) if isinstance(value, list) else value
        lines.append(f"{escaped(text)}\t{escaped(key)}\n")
    sys.stdout.write("".join(lines))


async def _cancel(args: argparse.Namespace, client: AsyncClient) -> int:
    status = await client.job(args.id).cancel()
    print(json_escaped(status.raw) if args.json else f"job {escaped(status.id)}: {escaped(status.state)}")
    return 0


async def _jobs(args: argparse.Namespace, client: AsyncClient) -> int:
    jobs = sorted(await client.jobs(), key=lambda s: _created(s.raw))
    if args.json:
        print(json_escaped([s.raw for s in jobs]))
        return 0
    for s in jobs:
        created = _created(s.raw)
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created)) if created else "-"
        fields = [s.id, s.state, s.job, when, (s.error or "").replace("\n", " ")]
        print("\t".join(map(escaped, fields)).rstrip("\t"))
    return 0


def _created(raw: dict[str, Any]) -> float:
    value = raw.get("created")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
