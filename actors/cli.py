"""The ``mapreduce`` command: run a job on a local cluster, keep a local cluster serving, serve one actor, or
drive a running master (the remote commands, in :mod:`actors.remote`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from . import __version__, remote
from .core.arguments import non_negative_int, positive_int
from .core.config import Settings
from .core.errors import ConfigError, MapReduceError
from .core.keyorder import canonical_of_text, typed_key
from .core.text import escaped, json_escaped
from .inputs.given import input_spec
from .interrupt import EXIT_INTERRUPTED, Interrupts
from .jobs import Catalog, load_catalog
from .jobs.records import FORMATS
from .jobs.result import STR_KEYS, shown
from .local import LocalCluster
from .localproc import ERROR_PREFIX
from .remote.entries import entry_fields
from .remote.progress import size_text


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return value


def job_param(text: str) -> tuple[str, str]:
    """An argparse type: ``NAME=VALUE``, one job parameter."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def local_catalog() -> Catalog:
    """The jobs this machine knows: built-ins, MR_JOB_MODULES from the environment, installed entry points."""
    return load_catalog(Settings.from_env().job_modules)


def print_jobs(as_json: bool) -> int:
    """``mapreduce kinds``: every job with its parameters and docstring."""
    kinds = local_catalog().describe()
    if as_json:
        print(json.dumps({"jobs": kinds}, ensure_ascii=False, indent=2))
        return 0
    for kind in kinds:
        print(f"{kind['name']}  ({kind['origin']}, fingerprint {kind['fingerprint']})")
        for line in kind["doc"].splitlines():
            print(f"    {line}")
        for name, doc in kind["parameters"].items():
            print(f"    --param {name}=...  {doc}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mapreduce", description="MapReduce on asyncio actors.")
    parser.add_argument("--version", action="version", version=f"mapreduce-actors {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def cluster_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--mappers", type=positive_int, default=3, help="mapper processes (default 3)")
        p.add_argument("--reducers", type=positive_int, default=2, help="reducer processes (default 2)")
        p.add_argument("--static", action="store_true", help="static peer lists instead of mDNS discovery")

    run = commands.add_parser("run", help="run a job over files, directories or globs on a local cluster and "
                              "print the result (the cluster's data root is the deepest directory holding them all)")
    run.add_argument("inputs", type=str, nargs="+", metavar="INPUT",
                     help="a file, a directory (walked recursively), a quoted glob (** spans directories), or "
                          "s3://bucket/key, s3://bucket/prefix/ or a quoted s3://bucket/prefix/*.log")
    run.add_argument("--top", type=positive_int, default=None,
                     help="print only the first N entries in the job's order (for counts: the most frequent)")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--job", default="wordcount", help="the job's name (`mapreduce kinds` lists them)")
    run.add_argument("--param", type=job_param, action="append", default=[], metavar="NAME=VALUE",
                     help="a job parameter (repeatable)")
    run.add_argument("--split-size", type=positive_int, default=None, help="bytes per split (default: the setting)")
    run.add_argument("--format", choices=FORMATS, default=None,
                     help="how the inputs' lines are read: lines (the default), jsonl or csv (docs/jobs.md)")
    run.add_argument("--max-bad-records", type=non_negative_int, default=None, metavar="N",
                     help="skip up to N records whose parsing or mapper fails, instead of failing the job")
    run.add_argument("--partitions", type=positive_int, default=None, metavar="N",
                     help="the job's partitions, so part files (default: the reducer count)")
    run.add_argument("--output", type=str, default=None, metavar="DIR",
                     help="write the result to DIR (or an s3://bucket/prefix/) as part-NNNNN.jsonl files and "
                          "_SUCCESS instead of printing it")
    cluster_options(run)

    local = commands.add_parser("local", help="keep a local cluster serving until Ctrl-C")
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=port_number, default=8080, help="the master's port (default 8080)")
    local.add_argument("--data-root", default=".", help="directory {\"path\": ...} inputs are read from")
    cluster_options(local)

    kinds = commands.add_parser("kinds", help="list the job kinds this machine has (built-ins, MR_JOB_MODULES, "
                                "entry points) with their parameters and docstrings")
    kinds.add_argument("--json", action="store_true", help="print them as JSON")
    commands.add_parser("serve", help="run one actor; its role comes from TYPE (what a pod runs)")
    remote.add_commands(commands)  # submit, status, result, cancel, jobs: a running master's API
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "remote", None) is not None:
            return remote.run(args)
        if args.command == "serve":
            from .serve import serve

            serve(Settings.from_env())
            return 0
        if args.command == "kinds":
            return print_jobs(args.json)
        if args.command == "run":
            local_catalog().sdk(args.job, dict(args.param))  # an unknown job or a bad parameter, before starting
            return asyncio.run(_run(args))
        return asyncio.run(_local(args))
    except ConfigError as error:  # a setting, a port or a directory to fix: a mistake in how it was started
        print(f"{ERROR_PREFIX}{escaped(error.message)}", file=sys.stderr)
        return 2
    except MapReduceError as error:  # a job's error may quote its input (a name, a line): escaped as remote's are
        print(f"{ERROR_PREFIX}{escaped(error.message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our stdout has gone (`mapreduce run FILE | head`): exit quietly, as a CLI killed by SIGPIPE
        # does. Point stdout at /dev/null so the interpreter's final flush does not raise the same error again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE


async def _run(args: argparse.Namespace) -> int:
    root, source = input_spec(args.inputs)
    s3_output = args.output if args.output is not None and args.output.startswith("s3://") else None
    output = Path(args.output).resolve() if args.output is not None and s3_output is None else None
    if output is not None and (output == root or output in root.parents):
        raise MapReduceError(f"--output {args.output} must not be a directory holding the inputs")
    started = time.monotonic()
    # The data root stays the inputs' own: the output gets a root of its own (its parent), so an output elsewhere
    # neither widens what path inputs may read nor renames the inputs. The API token is fresh and known only here:
    # no other local process can use this private cluster's master.
    cluster = LocalCluster(
        mappers=args.mappers, reducers=args.reducers, discovery="static" if args.static else "mdns",
        data_root=str(root), output_root=str(output.parent) if output is not None else "",
        extra_env={"MR_API_TOKEN": secrets.token_urlsafe(24)},
    )
    task = asyncio.current_task()
    assert task is not None
    with Interrupts(cluster, task, lambda line: print(line, file=sys.stderr, flush=True)) as interrupts:
        try:
            return await _run_on(args, cluster, root, source, output, started)
        except asyncio.CancelledError:
            if not interrupts.count:
                raise
            task.uncancel()  # our own cancel, from the interrupt: answered by the exit status
            return EXIT_INTERRUPTED


async def _run_on(args: argparse.Namespace, cluster: LocalCluster, root: Path, source: dict[str, Any],
                  output: Path | None, started: float) -> int:
    s3_output = args.output if output is None and args.output is not None else None  # an s3:// prefix
    async with cluster, aiohttp.ClientSession(base_url=cluster.master_url, headers=cluster.api_headers) as session:
        ready = time.monotonic() - started
        spec: dict[str, Any] = {"job": args.job, "params": dict(args.param), "input": source}
        if output is not None:
            spec["output"] = {"path": output.name}
        elif s3_output is not None:
            spec["output"] = {"path": s3_output}
        if args.split_size is not None:
            spec["split_size"] = args.split_size
        if args.format is not None:
            spec["format"] = args.format
        if args.max_bad_records is not None:
            spec["max_bad_records"] = args.max_bad_records
        if args.partitions is not None:
            spec["partitions"] = args.partitions
        async with session.post("/v1/jobs", json=spec) as response:
            submitted = await response.json()
            if response.status >= 400:
                raise MapReduceError(submitted.get("message", str(submitted)))
        job_id = submitted["id"]
        result = await _follow(session, job_id, cluster.check)
        elapsed = time.monotonic() - started
        count = submitted.get("inputs", {}).get("count", 1)  # the files the directories and globs held
    if output is not None or s3_output is not None:
        written = result["output"]
        print(f"{output or s3_output}: {len(written['parts'])} parts ({', '.join(written['parts'])}), "
              f"{written['keys']} keys, {written['bytes']} bytes, and {written['success']}")
    else:
        _print_result(args, result)
    named = source.get("name") or (f"{len(args.inputs)} s3:// inputs" if "uris" in source
                                   else f"{count} input{'s' if count != 1 else ''} under {root}")
    print(f"done: {result['keys']} keys from {named} in {elapsed:.2f} s (cluster ready in {ready:.2f} s)",
          file=sys.stderr)
    return 0


async def _follow(session: aiohttp.ClientSession, job_id: str, check: Callable[[], None]) -> dict[str, Any]:
    """Wait for the job, printing progress to stderr; the result request wakes as soon as the job ends. ``check``
    raises once the cluster cannot finish it (an actor it needs kept exiting)."""
    tty = sys.stderr.isatty()
    while True:
        async with session.get(f"/v1/jobs/{job_id}/result", params={"wait": "1"}) as response:
            body = await response.json()
            if response.status == 200:
                if tty:
                    print(file=sys.stderr)
                return dict(body)
        async with session.get(f"/v1/jobs/{job_id}") as response:
            status = await response.json()
        if status["state"] in ("failed", "cancelled"):
            raise MapReduceError(f"job {job_id} {status['state']}: {status['error']}")
        check()
        progress = status["progress"]
        total = max(progress["bytes_total"], 1)
        line = (f"{status['state']}: {progress['splits_done']}/{progress['splits_total']} splits, "
                f"{size_text(progress['bytes_done'])}/{size_text(progress['bytes_total'])} "
                f"({100 * progress['bytes_done'] / total:.0f}%)")
        print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)


def _print_result(args: argparse.Namespace, body: dict[str, Any]) -> None:
    job = local_catalog().get(args.job, dict(args.param))
    encoding = body.get("key_encoding", STR_KEYS)
    result = body["result"]
    if isinstance(result, list):  # records, typed keys (any JSON value for an mrjob job): as mrjob prints them
        records = result[:args.top] if args.top is not None else result
        if args.json:
            print(json_escaped(records))
        else:
            for key, value in records:
                print("\t".join(escaped(json.dumps(item, ensure_ascii=False)) for item in (key, value)))
        sys.stdout.flush()
        return
    if encoding != STR_KEYS:  # keys named by their JSON text: back to canonical keys, as the job's top takes them
        result = {canonical_of_text(name): value for name, value in result.items()}
    entries = job.top(result, args.top if args.top is not None else len(result))
    # Keys and values are the input's own words and names: a terminal must not run the escape sequences in them.
    if args.json:
        print(json_escaped(shown(entries, encoding)))
    else:
        for key, value in entries:
            print("\t".join(map(escaped, entry_fields(typed_key(key), value))))
    sys.stdout.flush()  # a closed pipe shows here, where main() handles it, not in the interpreter's exit


async def _local(args: argparse.Namespace) -> int:
    stop = asyncio.Event()  # Ctrl-C, or an actor the cluster needs given up
    data_root = str(Path(args.data_root).resolve())
    if not Path(data_root).is_dir():
        raise ConfigError(f"--data-root {args.data_root} is not a directory: create it, or give the directory "
                          "path inputs are read from")
    if args.port != 0:
        from .serve import listen  # the actor's side, imported only where it is needed (like `serve`)

        listen(args.host, args.port, "--port; --port 0 takes any free one").close()  # the master binds it next
    async with LocalCluster(
        mappers=args.mappers, reducers=args.reducers, discovery="static" if args.static else "mdns",
        host=args.host, master_port=args.port, data_root=data_root, on_broken=stop.set,
    ) as cluster:
        url = cluster.master_url
        # Name the token's variable, never its value: the banner may end up in a shared log.
        auth = ' -H "Authorization: Bearer $MR_API_TOKEN"' if cluster.api_headers else ""
        print(f"local cluster ready: master {url}, {args.mappers} mappers, {args.reducers} reducers, "
              f"data root {data_root}\n"
              f"  status page: {url}/\n"
              f"  mapreduce submit --url {url} --wait FILE     (the token: $MR_API_TOKEN, if set)\n"
              f"  curl{auth} '{url}/compute?text=hello+hello+hello+hello+world+world+world'\n"
              f"logs: {cluster.log_dir}\nCtrl-C stops it.", file=sys.stderr, flush=True)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        cluster.check()  # an actor it needs was given up: exit 1, keeping the logs
        print("stopping the local cluster ... (Ctrl-C again to kill)", file=sys.stderr, flush=True)
        for signum in (signal.SIGINT, signal.SIGTERM):  # the actors drain, unless told again
            loop.add_signal_handler(signum, cluster.kill)
    return 0
