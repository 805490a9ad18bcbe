"""The job SDK: a user's job module, written here (not shipped in actors/), run over real actors on loopback through
MR_JOB_MODULES and through an entry point, equal to the oracle; mismatched actors refused; keys canonical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.core.config import Settings
from actors.core.errors import BadRequest, ConfigError, WireError
from actors.core.partition import canonical_key, decode_key, display_key, split_by_partition
from actors.jobs import get_job, load_catalog
from actors.jobs.result import key_encoding, shown
from actors.sdk import plain_value
from actors.sequential import run_sequential, run_sequential_inputs
from actors.serve import build_app

from .conftest import Actor, Cluster, actor_settings, start_actor
from .framing import FrameDecoder
from .support import staged_items

USER_JOBS = '''
from actors.sdk import JobConfigError, MapReduceJob


class LongestByLetter(MapReduceJob):
    """How many distinct words start with each letter, and the longest of them."""

    name = "longest_by_letter"

    def mapper(self, line):
        for word in line.split():
            yield word[0], word

    def reducer(self, key, values):
        distinct = set(values)
        return [len(distinct), max(distinct, key=lambda w: (len(w), w))]  # ties by the word: deterministic


class Shapes(MapReduceJob):
    """Tuple and integer keys: (first letter, length) and length, counted with a combiner."""

    name = "shapes"
    parameters = {"min": "shortest word counted (default 1)"}

    def configure(self, params):
        raw = params.get("min", "1")
        if not raw.isdigit():
            raise JobConfigError(f"min must be a whole number, not {raw!r}")
        self.min = int(raw)

    def mapper(self, line):
        for word in line.split():
            if len(word) >= self.min:
                yield (word[0], len(word)), 1
                yield len(word), 1

    def combiner(self, key, values):
        return sum(values)

    def reducer(self, key, values):
        return sum(values)


class FilesByWord(MapReduceJob):
    """Which input files hold each word: every record knows its input's name."""

    name = "files_by_word"

    def mapper(self, line):
        for word in line.split():
            yield word, self.input_name

    def reducer(self, key, values):
        return sorted(set(values))


class Broken(MapReduceJob):
    """Fails where its parameter says: a NaN value, a lone surrogate in a key or a value or a value too large for a
    frame from the mapper; an exception in the reducer or in order."""

    name = "broken"
    parameters = {"where": "mapper, surrogate-key, surrogate-value, huge-value, reducer or order"}

    def mapper(self, line):
        where = self.params.get("where")
        for word in line.split():
            if where == "mapper":
                yield word, float("nan")
            elif where == "surrogate-key":
                yield word + "\\ud800", 1
            elif where == "surrogate-value":
                yield word, ["fine", "\\udfff"]
            elif where == "huge-value":
                yield word, "v" * 5_000_000
            else:
                yield word, 1

    def reducer(self, key, values):
        if key == "boom" and self.params.get("where") == "reducer":
            raise ZeroDivisionError("no reduce for boom")
        return sum(values)

    def order(self, key, value):
        if self.params.get("where") == "order":
            raise ValueError("no order for " + key)
        return super().order(key, value)
'''

WORDS = ["alpha", "beta", "γάμμα", "日本語", "😀", "naïve", "x", "The", "the", "a", "ab", "abc", "zz"]


def sample(seed: int, lines: int) -> str:
    import random

    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.choice([0, 1, 4, 9]))) for _ in range(lines))


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A job module written by the test into a temp dir on sys.path, under a name no other test uses."""
    name = f"userjobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "userpkg"
    root.mkdir()
    (root / f"{name}.py").write_text(USER_JOBS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    yield name
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


@pytest.fixture
async def actors_factory(data_root: Path) -> AsyncIterator[Any]:
    """A cluster whose actors each get their own overrides (one mapper without the module, ...)."""
    started: list[Actor] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(common: dict[str, Any], mappers: list[dict[str, Any]], reducers: list[dict[str, Any]]) -> Cluster:
        reducer_actors = [await start_actor(actor_settings("reducer", i, data_root, **{**common, **extra}))
                          for i, extra in enumerate(reducers)]
        urls = tuple(a.url for a in reducer_actors)
        mapper_actors = [await start_actor(actor_settings("mapper", i, data_root, reducer_urls=urls,
                                                          **{**common, **extra}))
                         for i, extra in enumerate(mappers)]
        master = await start_actor(actor_settings("master", 0, data_root, reducer_urls=urls,
                                                  mapper_urls=tuple(a.url for a in mapper_actors), **common))
        started.extend([*reducer_actors, *mapper_actors, master])
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        sessions.append(session)
        return Cluster(master, mapper_actors, reducer_actors, session)

    yield make
    for session in sessions:
        await session.close()
    for actor in reversed(started):
        await actor.runner.cleanup()


async def post(cluster: Cluster, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with cluster.session.post(f"{cluster.url}/v1/jobs", json=spec, headers=cluster.auth) as response:
        return response.status, dict(await response.json())


async def run(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    status, body = await post(cluster, spec)
    assert status == 202, body
    return await cluster.result(body["id"])


# ---------------------------------------------------------------------------------------------------------------
# canonical keys and values


def partition_of(key: Any, partitions: int) -> int:
    """The partition a mapper routes ``key`` to: its canonical string through split_by_partition."""
    parts = split_by_partition({canonical_key(key): 1}, partitions)
    return next(i for i, part in enumerate(parts) if part)


def test_str_keys_keep_todays_crc32_partitioning() -> None:
    for key in ["the", "日本語", "😀", "", "\x01x"]:
        assert canonical_key(key) == key
        assert partition_of(key, 7) == zlib.crc32(key.encode("utf-8")) % 7


@pytest.mark.parametrize("key", [0, -5, 2**64 - 1, ("a", 1), (("x",), 2, ()), "\x00starts with nul", ("\x00",)])
def test_non_str_keys_round_trip_and_never_collide_with_a_str(key: Any) -> None:
    text = canonical_key(key)
    assert text.startswith("\x00")
    assert decode_key(text) == key and type(decode_key(text)) is type(key)
    assert canonical_key(json.dumps(key) if not isinstance(key, str) else key) != text or isinstance(key, str)


@pytest.mark.parametrize("key", [1.5, True, None, ["a"], ("a", 1.0), b"x", 2**64, {"a": 1}])
def test_keys_that_are_not_str_int_or_tuples_are_refused(key: Any) -> None:
    with pytest.raises(BadRequest, match="key"):
        canonical_key(key)


@pytest.mark.parametrize("text", ["\x00[1,", "\x00[1.5]", "\x00[ 1]", "\x00true", "\x00\"a\"", "\x00{}"])
def test_forged_canonical_keys_are_wire_errors(text: str) -> None:
    with pytest.raises(WireError):
        decode_key(text)


def test_display_keys() -> None:
    assert display_key(canonical_key(("a", 1))) == '["a",1]'
    assert display_key(canonical_key(7)) == "7"
    assert display_key(canonical_key("\x00x")) == "\x00x"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1: "a"}, b"bytes", 2**64, {1.5}])
def test_values_must_be_plain_json(value: Any) -> None:
    with pytest.raises(BadRequest):
        plain_value(value)


def test_plain_values_pass_and_tuples_become_lists() -> None:
    assert plain_value(("a", [1, (2.5, None)], {"k": True})) == ["a", [1, [2.5, None]], {"k": True}]


PARTITION_SCRIPT = """
import json, sys
from actors.core.partition import canonical_key, split_by_partition
keys = ["the", 7, -3, ("a", 1), (("b",), 2), "日本語"]
parts = [split_by_partition({canonical_key(k): 1}, 13) for k in keys]
print(json.dumps([next(i for i, part in enumerate(p) if part) for p in parts]))
"""


def test_partitioning_is_the_same_under_two_hash_seeds() -> None:
    answers = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", PARTITION_SCRIPT], env=env, capture_output=True, text=True,
                             check=True, timeout=60)
        answers.append(json.loads(out.stdout))
    assert answers[0] == answers[1]
    assert answers[0][0] == zlib.crc32(b"the") % 13
    assert answers[0][3] == zlib.crc32(b'\x00["a",1]') % 13


# ---------------------------------------------------------------------------------------------------------------
# the adapter, without actors


def test_adapter_combines_and_reduces_like_the_oracle(user_module: str) -> None:
    text = sample(3, 200)
    job = get_job("shapes", {"min": "2"}, (user_module,))
    acc = job.partial()
    half = text.index("\n", len(text) // 2) + 1
    job.map_into(acc, text[:half], "in")
    job.map_into(acc, text[half:], "in")
    assert all(len(values) == 1 for values in acc.values())  # the combiner keeps one value per key
    part = job.map(text, "in")
    job.check(part)
    merged = job.partial()
    job.combine(merged, acc)
    job.combine(merged, part)
    doubled = run_sequential("shapes", (text + "\n" + text).encode(), params={"min": "2"}, modules=(user_module,))
    finished = job.finish(merged)  # keyed by canonical keys; the JSON object names them by its key encoding
    assert shown(list(finished.items()), key_encoding(finished)) == doubled


def test_a_bad_module_is_a_config_error_naming_it(data_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no_such_jobs_module_w5"):
        build_app(actor_settings("mapper", 0, data_root, job_modules=("no_such_jobs_module_w5",)))
    (tmp_path / "broken_jobs_w5.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "empty_jobs_w5.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"broken_jobs_w5.*boom at import"):
        load_catalog(("broken_jobs_w5",))
    with pytest.raises(ConfigError, match=r"empty_jobs_w5.*defines no MapReduceJob"):
        load_catalog(("empty_jobs_w5",))


@pytest.mark.parametrize("raw", ["pkg/jobs", "pkg..jobs", "1pkg", "pkg.jobs;rm"])
def test_mr_job_modules_takes_dotted_module_names_only(raw: str) -> None:
    with pytest.raises(ConfigError, match="MR_JOB_MODULES"):
        Settings.from_env({"MR_JOB_MODULES": raw})


def test_two_jobs_with_one_name_are_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   user_module: str) -> None:
    (tmp_path / "clash_jobs_w5.py").write_text(
        "from actors.sdk import MapReduceJob\nclass Mine(MapReduceJob):\n    name = 'wordcount'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="'wordcount' is defined twice"):
        load_catalog(("clash_jobs_w5",))


# ---------------------------------------------------------------------------------------------------------------
# over real actors


async def test_user_job_through_mr_job_modules_equals_the_oracle(actors_factory: Any, user_module: str,
                                                                 data_root: Path) -> None:
    common = {"job_modules": (user_module,)}
    cluster = await actors_factory(common, [{}, {}], [{}, {}, {}])
    text = sample(11, 3000)
    (data_root / "words.txt").write_text(text, encoding="utf-8")
    runs: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"job": "longest_by_letter", "input": {"path": "words.txt"}, "split_size": 4096}, {}),
        ({"job": "shapes", "params": {"min": "2"}, "input": {"text": text}, "split_size": 2048}, {"min": "2"}),
    ]
    for spec, params in runs:
        result = await run(cluster, spec)
        expected = run_sequential(spec["job"], text.encode(), "words.txt", params, (user_module,))
        assert result == expected and result
    shapes = await run(cluster, {"job": "shapes", "input": {"text": "ab ab c"}})
    assert shapes == {'["a",2]': 2, '["c",1]': 1, "2": 2, "1": 1}


async def test_a_job_missing_on_one_actor_is_refused_naming_it(actors_factory: Any, user_module: str) -> None:
    common = {"job_modules": (user_module,)}
    cluster = await actors_factory(common, [{}, {"job_modules": ()}], [{"job_modules": ()}, {}])
    status, body = await post(cluster, {"job": "longest_by_letter", "input": {"text": "a b"}})
    assert status == 400, body
    assert "mapper-1" in body["message"] and "reducer-0" in body["message"]
    assert "mapper-0" not in body["message"] and "not installed" in body["message"]
    assert await run(cluster, {"job": "wordcount", "input": {"text": "a b a"}}) == {"a": 2, "b": 1}


async def test_a_job_in_another_version_on_one_actor_is_refused(
        actors_factory: Any, user_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = f"{user_module}_v2"
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / f"{other}.py").write_text(USER_JOBS.replace('"""How many', '"""Version 2: how many'))
    monkeypatch.syspath_prepend(str(tmp_path / "v2"))
    cluster = await actors_factory({"job_modules": (user_module,)}, [{}], [{}, {"job_modules": (other,)}])
    status, body = await post(cluster, {"job": "longest_by_letter", "input": {"text": "a b"}})
    assert status == 400, body
    assert "different version on reducer-1" in body["message"]
    sys.modules.pop(other, None)


async def test_configure_errors_are_400s_with_the_jobs_message(actors_factory: Any, user_module: str) -> None:
    cluster = await actors_factory({"job_modules": (user_module,)}, [{}], [{}])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"job": "grep", "params": {"pattern": "(unclosed"}}, "bad pattern"),
        ({"job": "grep"}, "needs a non-empty parameter pattern"),
        ({"job": "shapes", "params": {"min": "two"}}, "min must be a whole number"),
        ({"job": "wordcount", "params": {"lower": "yes"}}, "lower must be true or false"),
        ({"job": "wordcount", "params": {"colour": "red"}}, "has no parameter colour"),
        ({"job": "wordcount", "params": {"lower": 1}}, "parameters are strings"),
        ({"job": "wordcount", "params": ["lower"]}, '"params" must be an object'),
    ]
    for spec, message in cases:
        status, body = await post(cluster, {**spec, "input": {"text": "a"}})
        assert status == 400 and message in body["message"], (spec, body)


async def test_built_ins_equal_the_oracle(actors_factory: Any) -> None:
    cluster = await actors_factory({}, [{}, {}], [{}, {}])
    text = sample(5, 2000) + "\nHello, hello! (The) the... --- error: disk; error: net\n"
    for job, params in [("grep", {"pattern": r"error: (\w+)"}), ("grep", {"pattern": r"a+"}),
                        ("median_length", {}), ("wordcount", {"lower": "true", "strip_punctuation": "true"}),
                        ("wordcount", {}), ("inverted_index", {})]:
        result = await run(cluster, {"job": job, "params": params, "input": {"text": text}, "split_size": 2048})
        assert result == run_sequential(job, text.encode(), "text", params), (job, params)
    assert (await run(cluster, {"job": "grep", "params": {"pattern": r"error: (\w+)"},
                                "input": {"text": text}})) == {"disk": 1, "net": 1}


async def test_kinds_and_healthz_advertise_the_jobs(actors_factory: Any, user_module: str) -> None:
    cluster = await actors_factory({"job_modules": (user_module,)}, [{}], [{}])
    async with cluster.session.get(f"{cluster.url}/v1/jobs/kinds", headers=cluster.auth) as response:
        kinds = {kind["name"]: kind for kind in (await response.json())["jobs"]}
    assert {"wordcount", "grep", "median_length", "inverted_index", "longest_by_letter", "shapes"} <= set(kinds)
    assert "pattern" in kinds["grep"]["parameters"] and kinds["shapes"]["combiner"] is True
    assert "longest" in kinds["longest_by_letter"]["doc"]
    async with cluster.session.get(f"{cluster.mappers[0].url}/healthz") as response:
        jobs = (await response.json())["jobs"]
    assert jobs["shapes"] == kinds["shapes"]["fingerprint"]


# ---------------------------------------------------------------------------------------------------------------
# entry points


@pytest.fixture
def entry_point_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """An installed distribution as importlib.metadata sees one: a *.dist-info with entry_points.txt on sys.path."""
    name = f"epjobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "site"
    root.mkdir()
    (root / f"{name}.py").write_text(USER_JOBS, encoding="utf-8")
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mapreduce_actors.jobs]\nletters = {name}:LongestByLetter\n"
                                           f"all = {name}\n")
    monkeypatch.syspath_prepend(str(root))
    load_catalog.cache_clear()
    yield root, name
    monkeypatch.undo()
    sys.modules.pop(name, None)
    load_catalog.cache_clear()


async def test_a_job_from_an_entry_point_runs_and_equals_the_oracle(actors_factory: Any,
                                                                    entry_point_dist: tuple[Path, str]) -> None:
    catalog = load_catalog()
    assert {"longest_by_letter", "shapes"} <= set(catalog.names())
    assert "entry point" in catalog.origins["longest_by_letter"]
    cluster = await actors_factory({}, [{}, {}], [{}, {}])
    text = sample(8, 1500)
    result = await run(cluster, {"job": "longest_by_letter", "input": {"text": text}, "split_size": 1024})
    assert result == run_sequential("longest_by_letter", text.encode())


def test_an_entry_point_job_is_found_by_a_separate_process(entry_point_dist: tuple[Path, str]) -> None:
    root, _ = entry_point_dist
    script = "from actors.jobs import load_catalog; print(load_catalog().fingerprints['longest_by_letter'])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.strip() == load_catalog().fingerprints["longest_by_letter"]



# ---------------------------------------------------------------------------------------------------------------
# the command line, and actors as separate processes

REPO = Path(__file__).resolve().parent.parent


def test_mapreduce_kinds_lists_built_ins_and_user_jobs(user_module: str, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from actors.cli import main

    monkeypatch.setenv("MR_JOB_MODULES", user_module)
    assert main(["kinds", "--json"]) == 0
    kinds = {kind["name"]: kind for kind in json.loads(capsys.readouterr().out)["jobs"]}
    assert kinds["shapes"]["parameters"] == {"min": "shortest word counted (default 1)"}
    assert kinds["shapes"]["origin"] == f"module {user_module}" and kinds["wordcount"]["origin"] == "built-in"
    assert main(["kinds"]) == 0
    listing = capsys.readouterr().out
    assert "--param pattern=" in listing and "longest_by_letter" in listing


@pytest.mark.parametrize(("argv", "message"), [
    (["--job", "grep", "--param", "pattern=("], "bad pattern"),
    (["--job", "nosuchjob"], "unknown job 'nosuchjob'"),
    (["--job", "wordcount", "--param", "lower"], "'lower' is not NAME=VALUE"),
])
def test_mapreduce_run_refuses_a_bad_job_before_starting_a_cluster(argv: list[str], message: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from actors.cli import main

    (tmp_path / "in.txt").write_text("a b\n")
    try:
        code = main(["run", *argv, str(tmp_path / "in.txt")])
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code or 0)
    assert code != 0
    assert message in capsys.readouterr().err


def test_a_user_job_on_process_actors_through_pythonpath_and_mr_job_modules(user_module: str,
                                                                            tmp_path: Path) -> None:
    user_dir = str(tmp_path / "userpkg")
    text = sample(21, 4000)
    (tmp_path / "words.txt").write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), user_dir]), "MR_JOB_MODULES": user_module}
    done = subprocess.run([sys.executable, "-m", "actors", "run", str(tmp_path / "words.txt"), "--json", "--static",
                           "--mappers", "2", "--reducers", "3", "--split-size", "8192", "--job", "shapes",
                           "--param", "min=2"], capture_output=True, text=True, timeout=180, env=env, check=False)
    assert done.returncode == 0, done.stderr
    expected = run_sequential("shapes", text.encode(), "words.txt", {"min": "2"}, (user_module,))
    assert json.loads(done.stdout) == expected and expected


def test_the_documented_example_job_runs_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = (REPO / "docs" / "jobs.md").read_text(encoding="utf-8")
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n")]
    name = f"doc_jobs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        result = run_sequential("longest_by_letter", b"apple avocado ax\nbanana bo", params={"min": "3"},
                                modules=(name,))
        assert result == {"a": [2, "avocado"], "b": [1, "banana"]}
        with pytest.raises(BadRequest, match="min must be a whole number"):
            run_sequential("longest_by_letter", b"", params={"min": "x"}, modules=(name,))
    finally:
        sys.modules.pop(name, None)
        load_catalog.cache_clear()


@pytest.mark.parametrize(("where", "message"), [
    ("mapper", "job 'broken': mapper (input 'text'): value nan is not a finite number"),
    ("reducer", "job 'broken': reducer raised ZeroDivisionError: no reduce for boom"),
    # These failed every attempt at encoding time ("cannot encode message", a frame too large), then the job.
    ("surrogate-key", "job 'broken': mapper (input 'text'): a key 'a\\ud800' has a lone surrogate, which has no "
                      "UTF-8 form"),
    ("surrogate-value", "job 'broken': mapper (input 'text'): a value '\\udfff' has a lone surrogate"),
    ("huge-value", "(key 'a') does not fit a shuffle frame of 1048576 bytes (MR_FRAME_CAP)"),
    # Reported as "internal error: the result cannot be encoded as JSON".
    ("order", "job 'broken': order raised ValueError: no order for "),
])
async def test_a_jobs_own_failure_fails_the_job_with_its_message(actors_factory: Any, user_module: str,
                                                                 where: str, message: str) -> None:
    cluster = await actors_factory({"job_modules": (user_module,)}, [{}, {}], [{}])
    status, body = await post(cluster, {"job": "broken", "params": {"where": where},
                                         "input": {"text": "a boom b\n"}})
    assert status == 202, body
    async with cluster.session.get(f"{cluster.url}/v1/jobs/{body['id']}/result", params={"wait": "30"},
                                   headers=cluster.auth) as response:
        answer = await response.json()
    state = await cluster.status(body["id"])
    assert state["state"] == "failed", (answer, state)
    assert message in state["error"], state
    if where not in ("reducer", "order"):
        assert state["attempts"]["started"] == 1 and state["attempts"]["retries"] == 0  # not retried


# ---------------------------------------------------------------------------------------------------------------
# params on the wire


def test_params_travel_in_assignments_and_headers_and_are_type_checked() -> None:
    from actors.core.messages import Assignment, StreamHeader, from_wire, to_wire

    header = StreamHeader(job="j", epoch=1, split=0, attempt=1, partition=0, partitions=1, job_name="grep", size=0,
                          params={"pattern": "a(b)"})
    assert from_wire(to_wire(header), StreamHeader) == header
    assignment = Assignment(job="j", epoch=1, split=0, attempt=1, job_name="grep", input_kind="path",
                            input_location="x", input_name="x", start=0, end=1, partitions=1, only_partitions=[],
                            params={"pattern": "a"})
    assert from_wire(to_wire(assignment), Assignment).params == {"pattern": "a"}
    for bad in ({"pattern": 1}, {"pattern": ["a"]}, ["pattern"], None):
        with pytest.raises(WireError, match="params"):
            from_wire({**to_wire(header), "params": bad}, StreamHeader)


def test_a_reducer_refuses_a_stream_of_the_same_job_with_other_params() -> None:
    from actors.core.errors import Conflict
    from actors.core.messages import StreamHeader
    from actors.reducer.ledger import Ledger

    ledger = Ledger(partition=0, clock=lambda: 0.0)

    def header(split: int, pattern: str) -> StreamHeader:
        return StreamHeader(job="j", epoch=1, split=split, attempt=1, partition=0, partitions=1, job_name="grep",
                            size=0, params={"pattern": pattern})

    state = ledger.admit(header(0, "a"))
    assert state.job_def.map("aa b", "s") == {"a": [2]}  # configured from the header's params, combined
    with pytest.raises(Conflict, match="other parameters"):
        ledger.admit(header(1, "b"))
    with pytest.raises(BadRequest, match="bad pattern"):
        Ledger(partition=0, clock=lambda: 0.0).admit(header(0, "("))


def test_a_broken_entry_point_is_a_config_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"brokenep_{uuid.uuid4().hex[:8]}"
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mapreduce_actors.jobs]\nghost = {name}_missing:Ghost\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_catalog.cache_clear()
    try:
        with pytest.raises(ConfigError, match=f"entry point 'ghost' = {name}_missing:Ghost"):
            load_catalog()
    finally:
        monkeypatch.undo()
        load_catalog.cache_clear()
    assert "wordcount" in load_catalog().names()


def test_one_keys_values_past_a_frame_travel_in_several_frames_and_merge_exactly() -> None:
    from actors.core.messages import Data, from_wire
    from actors.mapper.spool import Spool
    from actors.reducer.stage import Stage

    job = get_job("median_length")
    text = "".join(f"{'t' * (1 + i % 9)} " for i in range(20_000)) + "\n"
    spool = Spool(job, 1, 1000, 4096)
    try:
        spool.map(text, "in")
        spool.flush()
        frames = FrameDecoder(4096).feed(b"".join(spool.blocks(0)))
        stage = Stage(job, 1 << 20)
        for raw in frames:
            stage.add(from_wire(raw, Data))
        stage.verify(spool.commit(0))
    finally:
        spool.close()
    assert len(frames) > 4  # 20 000 lengths (about 20 KB) do not fit one 4 KiB frame
    assert job.finish(staged_items(stage)) == run_sequential("median_length", text.encode())


def test_a_mapper_flushes_a_job_without_combiner_by_its_values_not_only_its_keys() -> None:
    from actors.mapper.spool import Spool

    job = get_job("median_length")
    spool = Spool(job, 1, 100, 1 << 20)
    try:
        for _ in range(10):
            spool.map("tt " * 30 + "\n", "in")  # one key, 30 values a chunk
        assert spool.frames[0] >= 2  # flushed past 100 values although it held one key
        assert job.weight(spool._acc) < 100
    finally:
        spool.close()
    combined = get_job("wordcount")
    assert combined.weight({"a": 5, "b": 7}) == 2



def _documents(root: Path) -> list[tuple[str, bytes]]:
    """Three documents in a nested directory under the data root, as (name below the root, bytes)."""
    docs = {"docs/a.txt": sample(21, 400), "docs/b.txt": sample(22, 300), "docs/deep/c.txt": sample(23, 200)}
    for name, text in docs.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return [(name, text.encode()) for name, text in sorted(docs.items())]


async def test_a_user_job_over_several_files_through_mr_job_modules(actors_factory: Any, user_module: str,
                                                                    data_root: Path) -> None:
    documents = _documents(data_root)
    cluster = await actors_factory({"job_modules": (user_module,)}, [{}, {}], [{}, {}])
    for job in ("files_by_word", "longest_by_letter"):
        result = await run(cluster, {"job": job, "input": {"paths": ["docs"]}, "split_size": 4096})
        assert result == run_sequential_inputs(job, documents, modules=(user_module,)) and result
    assert (await run(cluster, {"job": "files_by_word", "input": {"paths": ["docs/deep"]}}))["alpha"] == [
        "docs/deep/c.txt"]


async def test_a_user_job_over_several_files_through_an_entry_point(actors_factory: Any, data_root: Path,
                                                                    entry_point_dist: tuple[Path, str]) -> None:
    documents = _documents(data_root)
    cluster = await actors_factory({}, [{}, {}], [{}, {}])
    result = await run(cluster, {"job": "files_by_word", "input": {"paths": ["docs/**/*.txt"]}, "split_size": 4096})
    assert result == run_sequential_inputs("files_by_word", documents) and result
