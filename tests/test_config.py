"""Settings: defaults, environment parsing, errors that name the variable, timeouts and the ordinal."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from actors.core.config import MiB, Settings, Timeouts, settings_table
from actors.core.envvars import declared, env_name
from actors.core.errors import ConfigError

BASE = {"HOSTNAME": "master-0"}


def env(**values: str) -> dict[str, str]:
    return {**BASE, **values}


def test_defaults() -> None:
    s = Settings.from_env(BASE)
    assert s.role == "master"
    assert s.port == 8080
    assert s.host == "0.0.0.0"
    assert s.name == "master-0"
    assert s.ordinal == 0
    assert s.advertise_url == "http://master-0:8080"
    assert s.discovery == "static"
    assert s.mapper_urls == () and s.reducer_urls == ()
    assert (s.mapper_host, s.reducer_host, s.mapper_port, s.reducer_port) == ("mapper", "reducer", 8081, 8082)
    assert s.split_size == 128 * MiB
    assert s.max_attempts == 4
    assert s.backup_tasks is True
    assert s.allow_private_urls is False
    assert s.token == ""
    assert s.timeouts == Timeouts()
    assert s == Settings(name="master-0", advertise_url="http://master-0:8080")


def test_settings_are_frozen() -> None:
    s = Settings.from_env(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    assert s.replace(port=1).port == 1
    assert s.port == 8080


def test_environment_is_read_from_the_mapping_given() -> None:
    # Nothing leaks in from os.environ when a mapping is given.
    s = Settings.from_env({"HOSTNAME": "x", "TYPE": "mapper"})
    assert s.role == "mapper"


@pytest.mark.parametrize(("role", "port"), [("master", 8080), ("mapper", 8081), ("reducer", 8082)])
def test_port_follows_the_role(role: str, port: int) -> None:
    assert Settings.from_env(env(TYPE=role)).port == port


def test_original_variables_keep_their_meaning() -> None:
    s = Settings.from_env(
        env(TYPE="Reducer", MAPPER_HOST="mappers", REDUCER_HOST="reducers", MAPPER_PORT="9001", REDUCER_PORT="9002")
    )
    assert s.role == "reducer"
    assert (s.mapper_host, s.reducer_host, s.mapper_port, s.reducer_port) == ("mappers", "reducers", 9001, 9002)
    assert s.port == 9002
    assert Settings.from_env(env(TYPE="reducer", REDUCER_PORT="9002", MR_PORT="7000")).port == 7000


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        env(
            MR_MAPPERS=" http://a:1/ , https://b:2,, ",
            MR_REDUCERS="http://r0:8082",
            MR_SPLIT_SIZE="1024",
            MR_KEY_BUDGET="7",
            MR_BACKUP_TASKS="off",
            MR_ALLOW_PRIVATE_URLS="YES",
            MR_JOB_TTL="12.5",
            MR_LOG_LEVEL="debug",
            MR_HOST="127.0.0.2",
            MR_PORT="0",
        )
    )
    assert s.mapper_urls == ("http://a:1", "https://b:2")
    assert s.reducer_urls == ("http://r0:8082",)
    assert s.split_size == 1024
    assert s.key_budget == 7
    assert s.backup_tasks is False
    assert s.allow_private_urls is True
    assert s.job_ttl == 12.5
    assert s.log_level == "DEBUG"
    assert s.advertise_url == "http://127.0.0.2:0"


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("true", True), ("On", True), (" yes ", True), ("0", False), ("FALSE", False),
                       ("no", False), ("off", False), ("", True)]
)
def test_booleans(raw: str, value: bool) -> None:
    assert Settings.from_env(env(MR_BACKUP_TASKS=raw)).backup_tasks is value


def test_empty_values_mean_default() -> None:
    s = Settings.from_env(env(MR_SPLIT_SIZE="", MR_PORT="", MR_TIMEOUT_LEASE="", TYPE=""))
    assert s.split_size == 128 * MiB and s.port == 8080 and s.timeouts.lease == Timeouts().lease and s.role == "master"


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("MR_SPLIT_SIZE", "abc"),
        ("MR_SPLIT_SIZE", "1.5"),
        ("MR_SPLIT_SIZE", "0"),
        ("MR_CHUNK_SIZE", "10"),
        ("MR_PORT", "70000"),
        ("MR_PORT", "-1"),
        ("MAPPER_PORT", "0"),
        ("REDUCER_PORT", "x"),
        ("MR_MAX_ATTEMPTS", "0"),
        ("MR_ORDINAL", "-1"),
        ("MR_BACKUP_TASKS", "maybe"),
        ("MR_ALLOW_PRIVATE_URLS", "2"),
        ("TYPE", "boss"),
        ("MR_DISCOVERY", "consul"),
        ("MR_MAPPERS", "mapper-0:8081"),
        ("MR_REDUCERS", "http://ok:1,ftp://bad:2"),
        ("MR_JOB_TTL", "soon"),
        ("MR_TIMEOUT_LEASE", "abc"),
        ("MR_TIMEOUT_CONNECT", "0"),
        ("MR_TIMEOUT_DRAIN", "-5"),
    ],
)
def test_errors_name_the_variable(key: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(**{key: raw}))
    assert key in str(info.value)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Timeouts)])
def test_every_timeout_can_be_overridden(name: str) -> None:
    s = Settings.from_env(env(**{f"MR_TIMEOUT_{name.upper()}": "0.25"}))
    assert getattr(s.timeouts, name) == 0.25
    others = {f.name for f in dataclasses.fields(Timeouts)} - {name}
    assert all(getattr(s.timeouts, o) == getattr(Timeouts(), o) for o in others)


@pytest.mark.parametrize("key", ["MR_TIMEOUT_LEASE", "MR_JOB_TTL"])
def test_nan_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Settings.from_env(env(**{key: "nan"}))


@pytest.mark.parametrize(
    ("variables", "ordinal"),
    [
        ({"HOSTNAME": "reducer-3"}, 3),
        ({"HOSTNAME": "reducer-12"}, 12),
        ({"HOSTNAME": "mapreduce-reducer-0"}, 0),
        ({"HOSTNAME": "master"}, 0),
        ({"HOSTNAME": "reducer-3x"}, 0),
        ({"HOSTNAME": "reducer-1", "MR_NAME": "reducer-5"}, 5),  # MR_NAME wins over HOSTNAME
        ({"HOSTNAME": "reducer-1", "MR_ORDINAL": "4"}, 4),  # an explicit ordinal wins over the name
    ],
)
def test_ordinal(variables: dict[str, str], ordinal: int) -> None:
    s = Settings.from_env(variables)
    assert s.ordinal == ordinal


def test_name_from_hostname() -> None:
    s = Settings.from_env({"HOSTNAME": "reducer-3", "TYPE": "reducer"})
    assert s.name == "reducer-3"
    assert s.advertise_url == "http://reducer-3:8082"


def test_advertise_url() -> None:
    assert Settings.from_env(env(MR_ADVERTISE_URL="http://me:1/")).advertise_url == "http://me:1"
    assert Settings.from_env(env(MR_ADVERTISE_HOST="10.0.0.1")).advertise_url == "http://10.0.0.1:8080"
    # An IPv6 pod IP (status.podIP on an IPv6 cluster) must be bracketed to make a URL.
    assert Settings.from_env(env(MR_ADVERTISE_HOST="fd00::5")).advertise_url == "http://[fd00::5]:8080"
    assert Settings.from_env(env(MR_ADVERTISE_HOST="[fd00::5]")).advertise_url == "http://[fd00::5]:8080"


def test_discovery_default_in_a_cluster() -> None:
    assert Settings.from_env(env(KUBERNETES_SERVICE_HOST="10.0.0.1")).discovery == "dns"
    assert Settings.from_env(env(KUBERNETES_SERVICE_HOST="10.0.0.1", MR_REDUCERS="http://r:1")).discovery == "static"
    assert Settings.from_env(env(KUBERNETES_SERVICE_HOST="10.0.0.1", MR_DISCOVERY="mdns")).discovery == "mdns"
    assert Settings.from_env(BASE).discovery == "static"


def test_every_setting_is_declared_with_a_variable_and_a_doc() -> None:
    nested = {f.name for f in dataclasses.fields(Settings) if f.name == "timeouts"}
    for cls in (Settings, Timeouts):
        for f in dataclasses.fields(cls):
            if f.name in nested:
                continue
            assert f in declared(cls), f"{cls.__name__}.{f.name} is not declared with setting()"
            assert f.metadata["doc"], f"{env_name(f)} has no doc"
    names = [env_name(f) for cls in (Settings, Timeouts) for f in declared(cls)]
    assert len(names) == len(set(names))


def test_the_settings_table_is_generated_from_the_declarations() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    begin, end = "<!-- settings:begin -->\n", "\n<!-- settings:end -->"
    shown = page[page.index(begin) + len(begin): page.index(end)]
    assert shown == settings_table(), (
        "docs/settings.md's table differs from actors/core/config.py; regenerate it with "
        '`python -c "from actors.core.config import settings_table; print(settings_table())"`'
    )


def test_every_declared_setting_is_read_from_its_variable() -> None:
    hints = {**typing.get_type_hints(Settings), **typing.get_type_hints(Timeouts)}
    for cls in (Settings, Timeouts):
        for f in declared(cls):
            kind = hints[f.name]
            if f.name in ("role", "discovery", "log_level", "advertise_url"):
                continue  # choices and derived values: covered by the tests above
            raw, expected = _sample(kind, f)
            s = Settings.from_env(env(**{env_name(f): raw}))
            value = getattr(s.timeouts if cls is Timeouts else s, f.name)
            assert value == expected, env_name(f)


def _sample(kind: object, f: dataclasses.Field[object]) -> tuple[str, object]:
    low = f.metadata["low"]
    if kind is bool:
        return ("false", False) if f.default else ("true", True)
    if kind is int:
        value = int(low if low is not None else 0) + 1025
        high = f.metadata["high"]
        value = min(value, int(high)) if high is not None else value
        return str(value), value
    if kind is float:
        return "7.5", 7.5
    if kind == tuple[str, ...] and f.name == "job_modules":
        return "pkg.jobs, other_jobs", ("pkg.jobs", "other_jobs")
    if kind == tuple[str, ...] and f.name == "allowed_hosts":
        return "MR.Example.com., .corp.example, [::1], *", ("mr.example.com", ".corp.example", "[::1]", "*")
    if kind == tuple[str, ...]:
        return "http://a:1,http://b:2", ("http://a:1", "http://b:2")
    return "some-value", "some-value"


def test_backoff_doubles_from_first_up_to_most_and_is_jittered() -> None:
    from actors.core.config import Backoff

    backoff = Backoff(0.05, 1.0)
    assert [backoff.pause(t) for t in (1, 2, 3, 4, 5, 6, 100)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.pause(0) == 0.05  # no try yet counts as the first
    assert backoff.pause(3, 1.5) == pytest.approx(0.3)


def test_retry_settings_reach_the_policies_that_use_them() -> None:
    from actors.mapper.app import SendPolicy
    from actors.master.workers import WorkerPolicy

    env = {"MR_SEND_ATTEMPTS": "9", "MR_STRAGGLER_CHECK": "0.5", "MR_MAX_WAIT": "30", "MR_BACKUP_AFTER": "60"}
    settings = Settings.from_env(env)
    send = SendPolicy.of(settings)
    assert (send.attempts, send.backoff, send.discovery) == (9, settings.send_backoff, settings.discovery_backoff)
    worker = WorkerPolicy.of(settings)
    assert (worker.backoff, worker.tick, settings.max_wait) == (settings.mapper_backoff, 0.5, 30.0)
    # Retry pauses are fixed policies: each loop's bound is a setting, its pauses are not.
    for backoff in (settings.peer_backoff, settings.discovery_backoff, settings.send_backoff, settings.mapper_backoff):
        assert 0 < backoff.first <= 0.1 and backoff.first < backoff.most <= 2.0
    with pytest.raises(ConfigError, match="MR_SEND_ATTEMPTS=0 is below its minimum 1"):
        Settings.from_env({"MR_SEND_ATTEMPTS": "0"})
