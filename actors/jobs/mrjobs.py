"""mrjob jobs run unchanged: an ``mrjob.job.MRJob`` subclass (mrjob 0.7.x) adapted onto the SDK's steps and records.

Imported only when a registered module defines an MRJob (actors.jobs.catalog), so mrjob stays an optional extra.
mrjob's semantics are kept where they show in a result: keys are grouped and sorted by their *serialized* form
(the job's internal protocol, JSON), so the shuffle key is the key's JSON text (a str) and values travel as their
JSON text too (so ``SORT_VALUES`` sorts them as mrjob's sort does: by that text), decoded before each call of the
job's code (tuples come back as lists). See docs/mrjob.md.
"""

from __future__ import annotations

import inspect
import os
from argparse import ArgumentParser
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from mrjob import protocol as mrp
from mrjob.job import MRJob
from mrjob.step import MRStep

from ..core.errors import ConfigError
from ..sdk import JobConfigError, MapReduceJob, OutputKey, Step

#: What ``jobconf_from_env('mapreduce.map.input.file')`` (and the old ``map.input.file``) reads in a task.
INPUT_FILE_VARS = ("mapreduce_map_input_file", "map_input_file")
#: Features of an MRStep that need Hadoop Streaming's shell (or a JVM): refused at submit, named.
COMMANDS = ("mapper_cmd", "combiner_cmd", "reducer_cmd", "mapper_pre_filter", "combiner_pre_filter",
            "reducer_pre_filter")
KEY_VALUE = (mrp.StandardJSONProtocol, mrp.SimpleJSONProtocol, mrp.UltraJSONProtocol, mrp.RapidJSONProtocol)
VALUE_ONLY = (mrp.StandardJSONValueProtocol, mrp.SimpleJSONValueProtocol, mrp.UltraJSONValueProtocol,
              mrp.RapidJSONValueProtocol)
RAW = (mrp.RawProtocol, mrp.RawValueProtocol)
INPUT_PROTOCOLS = KEY_VALUE + VALUE_ONLY + RAW
OUTPUT_PROTOCOLS = INPUT_PROTOCOLS
Pairs = Iterable[tuple[Any, Any]]


def mrjob_classes(module: Any) -> list[type[MapReduceJob]]:
    """The job a module of MRJob code defines: its MRJob subclass (one that no other class of the module extends),
    adapted and named after the module (``mrjob.examples.mr_wc`` runs as ``mr_wc``); ConfigError for several."""
    defined = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, MRJob) and value is not MRJob
               and value.__module__ == module.__name__]
    leaves = [cls for cls in defined if not any(other is not cls and issubclass(other, cls) for other in defined)]
    if len(leaves) > 1:
        names = ", ".join(sorted(cls.__qualname__ for cls in leaves))
        raise ConfigError(f"module {module.__name__!r} defines several mrjob jobs ({names}): a module runs as one "
                          "job, named after it; put each in a module of its own")
    return [adapted(leaves[0])] if leaves else []


def adapted(mr_class: type[MRJob]) -> type[MapReduceJob]:
    """The SDK job class that runs ``mr_class`` (the same class each time: the worker finds it by the MRJob's module
    and qualified name, as the catalog did)."""
    have = mr_class.__dict__.get("_mapreduce_adapter")
    if have is not None and have.mrjob_class is mr_class:
        return have  # type: ignore[no-any-return]
    options = _options(mr_class)
    probe = _probe(mr_class)
    attrs: dict[str, Any] = {
        "__module__": mr_class.__module__, "__qualname__": mr_class.__qualname__,
        "__doc__": inspect.getdoc(mr_class) or f"mrjob job {mr_class.__qualname__}",
        "name": mr_class.__module__.rsplit(".", 1)[-1], "mrjob_class": mr_class,
        "parameters": {name: help_text for name, (_, help_text, _) in options.items()},
        "options": {name: flag for name, (flag, _, _) in options.items()},
        "file_params": frozenset(name for name, (_, _, is_file) in options.items() if is_file),
        "files": _side_files(mr_class), "sort_values": bool(getattr(mr_class, "SORT_VALUES", False)),
    }
    if probe is not None:
        attrs["sort_values"] = bool(probe.sort_values())
    cls = type(mr_class.__name__, (MRJobAdapter,), attrs)
    mr_class._mapreduce_adapter = cls
    return cls


def _options(mr_class: type[MRJob]) -> dict[str, tuple[bool, str, bool]]:
    """The job's own options (``configure_args``: passthru and file args), long name without dashes -> (whether it
    is a flag taking no value, its help, whether it is a file arg: a side file); what MRJob.__init__ builds before it
    parses anything."""
    job: Any = object.__new__(mr_class)
    job._passthru_arg_dests = set()
    job._file_arg_dests = set()
    job.arg_parser = ArgumentParser(add_help=False)
    try:
        job.configure_args()
    except Exception as error:
        raise ConfigError(f"mrjob job {mr_class.__qualname__}: configure_args raised {type(error).__name__}: "
                          f"{error}") from None
    own = job._passthru_arg_dests | job._file_arg_dests
    found: dict[str, tuple[bool, str, bool]] = {}
    for action in job.arg_parser._actions:
        if action.dest not in own:
            continue
        longs = [flag for flag in action.option_strings if flag.startswith("--")] or action.option_strings
        if not longs:
            continue
        is_file = action.dest in job._file_arg_dests
        kind = "a file under the data root, copied into each task: " if is_file else ""
        found[longs[0].lstrip("-")] = (action.nargs == 0, kind + (action.help or action.dest).split("%")[0].strip(),
                                       is_file)
    return found


def _probe(mr_class: type[MRJob]) -> MRJob | None:
    """The job made with no options, to read whether it sorts values; None when it cannot be (an option it
    requires): its options then decide at submit, where a SORT_VALUES the class did not show is refused."""
    try:
        return mr_class(args=[])
    except (Exception, SystemExit):
        return None


def _side_files(mr_class: type[MRJob]) -> dict[str, str]:
    """``FILES`` (paths next to the job's module, ``path#name`` renamed) as the SDK's ``package:`` side files."""
    found: dict[str, str] = {}
    for entry in getattr(mr_class, "FILES", None) or ():
        path, _, name = str(entry).partition("#")
        found[name or os.path.basename(path)] = f"package:{path}"
    return found


class MRJobAdapter(MapReduceJob):
    """An MRJob run through the SDK: made in ``configure`` with the job's parameters as its command-line options."""

    mrjob_class: ClassVar[type[MRJob]]
    #: Long option name -> True for a flag (``store_true`` and the like: ``--param NAME=true``).
    options: ClassVar[dict[str, bool]] = {}
    stream_values = True  # mrjob reducers get a generator: a key may hold more values than memory

    def configure(self, params: Any) -> None:
        args: list[str] = []
        for name, value in sorted(params.items()):
            if self.options[name]:
                if value.lower() not in ("true", "false", "1", "0", ""):
                    raise JobConfigError(f"--{name} is a flag: give true or false, not {value!r}")
                if value.lower() in ("true", "1", ""):
                    args.append(f"--{name}")
            else:
                args += [f"--{name}", value]
        try:
            self.mr = self.mrjob_class(args=args)
        except SystemExit as exit_:
            raise JobConfigError(f"the mrjob job's options were refused (exit {exit_.code})") from None
        self.mr.increment_counter = self._mr_counter
        self.mr_steps = self.mr.steps()
        self._check()
        self.internal = self.mr.internal_protocol()
        self.output = self.mr.output_protocol()
        self.input = self.mr.input_protocol()
        self._env_input = ""

    def _check(self) -> None:
        """Refuse, naming it, what cannot run here; at submit (configure runs there, in a task process)."""
        steps = self.mr_steps
        if not isinstance(steps, list) or not steps:
            raise JobConfigError("the mrjob job has no steps (no mapper, reducer or steps())")
        for number, step in enumerate(steps, 1):
            if not isinstance(step, MRStep):
                raise JobConfigError(f"step {number} is a {type(step).__name__}: jar and Spark steps cannot run here")
            for feature in COMMANDS:
                if step[feature] is not None:
                    raise JobConfigError(f"step {number} uses {feature}: shell commands (Hadoop Streaming) cannot "
                                         "run here; write it in Python")
            if number > 1 and step["mapper_raw"] is not None:
                raise JobConfigError(f"step {number} uses mapper_raw: only a first step reads whole input files")
        mr = self.mr
        for what, value in (("HADOOP_INPUT_FORMAT", mr.hadoop_input_format()),
                            ("HADOOP_OUTPUT_FORMAT", mr.hadoop_output_format()), ("PARTITIONER", mr.partitioner()),
                            ("LIBJARS", mr.libjars()), ("DIRS", mr.dirs()), ("ARCHIVES", mr.archives())):
            if value:
                raise JobConfigError(f"{what} (Hadoop's) cannot run here")
        checks = (("INPUT_PROTOCOL", mr.input_protocol(), INPUT_PROTOCOLS),
                  ("INTERNAL_PROTOCOL", mr.internal_protocol(), KEY_VALUE),
                  ("OUTPUT_PROTOCOL", mr.output_protocol(), OUTPUT_PROTOCOLS))
        for what, given, allowed in checks:
            if not isinstance(given, allowed):
                raise JobConfigError(f"{what} {type(given).__name__} is not supported here (JSON, JSONValue, RawValue "
                                     "and Raw protocols are; the internal one must be JSON)")
        if bool(mr.sort_values()) != self.sort_values:
            raise JobConfigError("SORT_VALUES differs from the job made with no options")

    def _mr_counter(self, group: Any, counter: Any, amount: int = 1) -> None:
        """mrjob's increment_counter, counted by the SDK (committed attempts only) instead of printed to stderr."""
        if type(amount) is not int:
            raise TypeError(f"amount must be an integer, not {amount!r}")
        group = (group if isinstance(group, str) else str(group)).replace(",", ";")
        counter = (counter if isinstance(counter, str) else str(counter)).replace(",", ";")
        self.increment_counter(group, counter, amount)

    # -- encoding: mrjob's protocols ---------------------------------------------------------------------------------

    def _internal(self, pairs: Pairs | None) -> Iterator[tuple[str, str]]:
        """Pairs the job's code made, as (key JSON text, value JSON text): what travels between its functions."""
        write = self.internal.write
        for key, value in pairs or ():
            line = write(key, value)
            key_text, _, value_text = line.partition(b"\t")
            yield key_text.decode("utf-8"), value_text.decode("utf-8")

    def _output(self, pairs: Pairs | None) -> Iterator[tuple[OutputKey, Any]]:
        """Pairs of the job's last step as output records: what mrjob's OUTPUT_PROTOCOL writes, read back by it (a
        value protocol's key is None), the key any JSON value."""
        out = self.output
        for key, value in pairs or ():
            read_key, read_value = out.read(out.write(key, value))
            yield OutputKey(read_key), read_value

    def _decode(self, key_text: str, value_text: str) -> tuple[Any, Any]:
        return self.internal.read(key_text.encode("utf-8") + b"\t" + value_text.encode("utf-8"))  # type: ignore[no-any-return]

    def _key(self, key_text: str) -> Any:
        return self._decode(key_text, "null")[0]

    def _values(self, values: Iterable[Any], sort: bool) -> Iterator[Any]:
        """The JSON texts of a key's values (combined bundles flattened) decoded, one at a time."""
        read = self.internal.read
        texts: Iterable[str] = _flat(values)
        if sort:  # bundles from a combiner: sorted here as mrjob sorts lines (in memory, as its inline runner)
            texts = sorted(texts)
        for text in texts:
            yield read(b"null\t" + text.encode("utf-8"))[1]

    def _input_file(self) -> None:
        if self.input_name != self._env_input:  # what jobconf_from_env('mapreduce.map.input.file') reads
            self._env_input = self.input_name
            for var in INPUT_FILE_VARS:
                os.environ[var] = self.input_name

    # -- the SDK job ------------------------------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        last = len(self.mr_steps) - 1
        return [self._step(index, step, index == last) for index, step in enumerate(self.mr_steps)]

    def whole_file(self, path: str, name: str) -> Iterable[tuple[Any, Any]]:
        """``mapper_raw(input_path, input_uri)`` of the first step: the input's local path and its name."""
        self._input_file()
        return self._internal(self.mr_steps[0]["mapper_raw"](path, name))

    def _step(self, index: int, step: MRStep, last: bool) -> Step:
        mapper, encode = step["mapper"], self._internal
        if index == 0:
            read = self.input.read

            def first(line: str) -> Iterator[tuple[str, str]]:
                self._input_file()
                key, value = read(line.encode("utf-8"))
                yield from encode(mapper(key, value) if mapper is not None else [(key, value)])
            map_line: Callable[..., Any] = first
        else:
            def later(key_text: str, value_text: str) -> Iterator[tuple[str, str]]:
                key, value = self._decode(key_text, value_text)
                yield from encode(mapper(key, value) if mapper is not None else [(key, value)])
            map_line = later
        emit: Callable[[Pairs | None], Iterator[tuple[Any, Any]]] = self._output if last else self._internal
        reducer = step["reducer"]
        sort = self.sort_values and step["combiner"] is not None

        def reduce(key_text: str, values: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
            decoded = self._values(values, sort)
            first = next(decoded, _NONE)
            if first is _NONE:
                return  # a combiner dropped every value: mrjob calls no reducer for the key
            given = _chain(first, decoded)
            key = self._key(key_text)
            yield from emit(reducer(key, given) if reducer is not None else ((key, value) for value in given))

        def hook(function: Callable[[], Pairs | None] | None, out: Callable[[Pairs | None], Iterator[Any]],
                 mapping: bool) -> Callable[[], Any] | None:
            if function is None:
                return None

            def run() -> list[tuple[Any, Any]]:
                if mapping:
                    self._input_file()
                return list(out(function()))
            return run

        combiner = step["combiner"]
        combines = combiner is not None and step["combiner_init"] is None and step["combiner_final"] is None
        raw = self.whole_file if index == 0 and step["mapper_raw"] is not None else None
        return Step(mapper=map_line, mapper_raw=raw,
                    combiner=(lambda key, values: self._combine(combiner, key, values)) if combines else None,
                    reducer=reduce, mapper_init=hook(step["mapper_init"], encode, True),
                    mapper_final=hook(step["mapper_final"], encode, True),
                    reducer_init=hook(step["reducer_init"], emit, False),
                    reducer_final=hook(step["reducer_final"], emit, False))

    def _combine(self, combiner: Callable[..., Pairs | None], key_text: str, values: list[Any]) -> Any:
        """mrjob's combiner over some values of a key: its values as one JSON text, or a bundle (a list) of them when
        it yields none or several. A combiner must keep its key (Hadoop does not re-partition what it yields)."""
        out = []
        for new_key, value_text in self._internal(combiner(self._key(key_text), self._values(values, False))):
            if new_key != key_text:
                raise ValueError(f"the combiner of key {key_text} yielded key {new_key}: a combiner must keep its key")
            out.append(value_text)
        return out[0] if len(out) == 1 else out


class _None:
    """No value at all (None is a value)."""


_NONE = _None()


def _flat(values: Iterable[Any]) -> Iterator[str]:
    for value in values:
        if type(value) is str:
            yield value
        else:
            yield from value


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
