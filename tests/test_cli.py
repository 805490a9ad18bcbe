"""The `mapreduce` command as a user meets it: arguments, unreadable and oddly named files, closed pipes, tokens."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

import actors
from actors.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "genesis-kjv.txt"
# Root reads any file whatever its mode: CI runs as root, so an unreadable file is made by running the command
# without the two capabilities that let root bypass file permissions (uid stays 0, so the venv is still usable).
API_TOKEN = "user-api-token"
NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search"]


def mapreduce(*args: str, env: dict[str, str] | None = None, drop_dac: bool = False,
              timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    prefix = NO_DAC if drop_dac and os.geteuid() == 0 else []
    return subprocess.run([*prefix, sys.executable, "-m", "actors", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          check=False, cwd=cwd)


def unreadable(path: Path) -> Path:
    path.write_text("secret words\n")
    path.chmod(0)
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return path


@pytest.mark.parametrize(("argv", "message"), [
    (["--split-size", "0"], "argument --split-size: '0' must be a positive integer"),
    (["--partitions", "0"], "argument --partitions: '0' must be a positive integer"),
    (["--top", "-1"], "argument --top: '-1' must be a positive integer"),
    (["--top", "0"], "argument --top: '0' must be a positive integer"),
    (["--top", "ten"], "argument --top: 'ten' is not an integer"),
    (["--mappers", "0"], "argument --mappers: '0' must be a positive integer"),
    (["--reducers", "-2"], "argument --reducers: '-2' must be a positive integer"),
])
def test_run_refuses_numbers_that_are_not_positive(argv: list[str], message: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.txt").write_text("a b a\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(tmp_path / "in.txt"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_local_refuses_a_port_out_of_range(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["local", "--port", port])
    assert exit_info.value.code == 2
    assert f"argument --port: '{port}' is not a port number" in capsys.readouterr().err


def test_run_refuses_an_unreadable_file_before_starting_a_cluster(tmp_path: Path) -> None:
    secret = unreadable(tmp_path / "secret.txt")
    done = mapreduce("run", str(secret), "--static", drop_dac=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"mapreduce: cannot read {secret}: permission denied"


def test_run_refuses_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xff.txt")
    (tmp_path / name).write_text("a b a\n")
    done = mapreduce("run", str(tmp_path / name), "--static", timeout=30)
    assert done.returncode == 1, done.stderr
    assert "its file name b'caf\\xff.txt' is not valid UTF-8; rename the file" in done.stderr
    assert "surrogates" not in done.stderr


@pytest.mark.parametrize("form", ["text", "json"])
def test_run_prints_the_inputs_words_with_their_control_characters_escaped(tmp_path: Path, form: str) -> None:
    """A word is whatever lies between spaces: an escape sequence (a title set, a hidden line), a C1 CSI or a bidi
    override in a file reached the terminal as it was. `mapreduce result` escapes them; `run` must too."""
    hostile = "\x1b]0;owned\x07title \x9b31mred \u202eevil plain plain\n"
    (tmp_path / "words.txt").write_text(hostile)
    done = mapreduce("run", str(tmp_path / "words.txt"), "--static", *(["--json"] if form == "json" else []),
                     timeout=60)
    assert done.returncode == 0, done.stderr
    shown = done.stdout
    assert not any(ch in shown for ch in "\x1b\x07\x9b\u202e"), repr(shown)
    if form == "json":
        assert json.loads(shown) == dict(Counter(hostile.split()))
    else:
        assert "1\t\\x1b]0;owned\\x07title\n" in shown and "2\tplain\n" in shown, repr(shown)


def test_run_into_a_closed_pipe_exits_quietly_and_stops_the_cluster(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("\n".join(f"word{i} " * (1 + i % 3) for i in range(40_000)))  # ~400 KB of output
    logs = tmp_path / "tmp"
    logs.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(logs)}
    with subprocess.Popen([sys.executable, "-m", "actors", "run", str(words), "--static"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # what `| head -1` does after its first line
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=120)
    assert first.split(b"\t")[0] in (b"1", b"2", b"3")
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert code == 128 + signal.SIGPIPE, stderr
    assert list(logs.iterdir()) == []  # the cluster was stopped and its log directory removed


def test_run_sends_the_api_token_it_configured_the_master_with(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("b a\nc a b a\n")
    done = mapreduce("run", str(tmp_path / "in.txt"), "--json", "--static", "--mappers", "2",
                     env={"MR_API_TOKEN": API_TOKEN})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"a": 3, "b": 2, "c": 1}


class LocalCommand:
    """`mapreduce local` in a subprocess: waits for its banner, answers the master's URL, stops it with Ctrl-C."""

    def __init__(self, data_root: Path, env: dict[str, str], drop_dac: bool = False) -> None:
        prefix = NO_DAC if drop_dac and os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "actors", "local", "--port", "0", "--static", "--mappers", "1",
             "--reducers", "1", "--data-root", str(data_root)],
            env={**os.environ, "PYTHONPATH": str(REPO), **env}, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        self.banner: list[str] = []
        for line in self.process.stderr:  # bounded by the cluster's own start-up timeout
            self.banner.append(line)
            if line.startswith("local cluster ready"):
                self.url = line.split("master ", 1)[1].split(",", 1)[0]
                break
        else:
            raise AssertionError("mapreduce local exited before it was ready:\n" + "".join(self.banner))
        self.banner += [next(self.process.stderr) for _ in range(3)]  # status page, remote CLI, curl

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


async def test_local_sends_the_api_token_and_shows_how_to(tmp_path: Path) -> None:
    local = LocalCommand(tmp_path, {"MR_API_TOKEN": API_TOKEN})
    try:
        status_page, submit, curl = local.banner[-3:]
        assert status_page.strip() == f"status page: {local.url}/", local.banner
        assert submit.strip().startswith(f"mapreduce submit --url {local.url} ") and "$MR_API_TOKEN" in submit
        assert '-H "Authorization: Bearer $MR_API_TOKEN"' in curl, local.banner
        assert API_TOKEN not in "".join(local.banner)  # the banner names the variable, never the secret
        async with aiohttp.ClientSession(base_url=local.url) as session:
            async with session.get("/compute", params={"text": "a b a"}) as response:
                assert response.status == 401
            async with session.get("/compute", params={"text": "a b a"},
                                   headers={"Authorization": f"Bearer {API_TOKEN}"}) as response:
                assert await response.json() == {"a": 2, "b": 1}
    finally:
        assert local.stop() == 0


async def test_master_refuses_unreadable_and_non_utf8_paths_at_submit(tmp_path: Path) -> None:
    unreadable(tmp_path / "secret.txt")
    (tmp_path / os.fsdecode(b"caf\xff.txt")).write_text("a b a\n")
    (tmp_path / "fine.txt").write_text("a b a\n")
    local = LocalCommand(tmp_path, {}, drop_dac=True)
    try:
        async with aiohttp.ClientSession(base_url=local.url) as session:
            for name, message in [
                ("secret.txt", "cannot read input path 'secret.txt': permission denied"),
                (os.fsdecode(b"caf\xff.txt"), '"input.path" is not valid Unicode text: it has a lone surrogate at '
                 'character 3, which has no UTF-8 form'),
            ]:
                async with session.post("/v1/jobs", json={"input": {"path": name}}) as response:
                    body = await response.json()
                    assert response.status == 400, body
                    assert body == {"error": "bad_input", "message": message}
            async with session.post("/v1/jobs", json={"input": {"path": "fine.txt"}}) as response:
                job = await response.json()
            async with session.get(f"/v1/jobs/{job['id']}/result", params={"wait": "60"}) as response:
                assert (await response.json())["result"] == {"a": 2, "b": 1}
    finally:
        assert local.stop() == 0


def test_demo_script_passes_its_arguments_to_run_only() -> None:
    # The test's own environment is the venv to use: env.sh finds it installed and installs nothing.
    env = {**os.environ, "VENV": sys.prefix, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), "--top", "5", "--static"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    expected = Counter(SAMPLE.read_text().split()).most_common(5)
    assert done.stdout.splitlines() == [f"{count}\t{word}" for word, count in expected]
    assert "installing" not in done.stderr


def test_env_script_refuses_arguments_that_are_not_extras(tmp_path: Path) -> None:
    script = tmp_path / "caller.sh"
    script.write_text(f'. "{REPO}/scripts/env.sh"\necho "not reached"\n')
    env = {**os.environ, "VENV": sys.prefix, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(script), "--top", "5"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'--top' is not a list of extras" in done.stderr and "not reached" not in done.stdout


# ---------------------------------------------------------------- starting mistakes: one line naming the fix, exit 2


def test_version_prints_the_package_version() -> None:
    done = mapreduce("--version", timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"mapreduce-actors {actors.__version__}"


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr, asserted to be a single ``mapreduce: ...`` line and exit status 2."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("mapreduce: "), line
    return line


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 another socket is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_local_on_a_busy_port_says_so_in_one_line(busy_port: int) -> None:
    line = one_line(mapreduce("local", "--port", str(busy_port), "--static", timeout=60))
    assert f"cannot listen on 127.0.0.1:{busy_port}: address already in use" in line
    assert "choose another port (--port; --port 0 takes any free one)" in line


@pytest.mark.parametrize("role", ["master", "mapper", "reducer"])
def test_serve_on_a_busy_port_says_so_in_one_line(busy_port: int, role: str) -> None:
    line = one_line(mapreduce("serve", env={"TYPE": role, "MR_HOST": "127.0.0.1", "MR_PORT": str(busy_port)},
                              timeout=60))
    assert line == (f"mapreduce: cannot listen on 127.0.0.1:{busy_port}: address already in use; another process "
                    "is listening there: stop it, or choose another port (MR_PORT)")


def test_a_missing_data_root_is_refused_before_anything_starts(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-volume"
    line = one_line(mapreduce("local", "--data-root", str(missing), "--port", "0", "--static", timeout=60))
    assert line == (f"mapreduce: --data-root {missing} is not a directory: create it, or give the directory path "
                    "inputs are read from")
    for role in ("master", "mapper"):
        line = one_line(mapreduce("serve", env={"TYPE": role, "MR_HOST": "127.0.0.1", "MR_PORT": "0",
                                                "MR_DATA_ROOT": str(missing)}, timeout=60))
        assert line.startswith(f"mapreduce: MR_DATA_ROOT={missing} is not a directory: "), line


@pytest.mark.parametrize("command", [["run", "FILE", "--static"], ["local", "--port", "0", "--static"], ["serve"]])
def test_a_bad_setting_is_one_line_naming_it(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a b a\n")
    argv = [str(tmp_path / "in.txt") if arg == "FILE" else arg for arg in command]
    line = one_line(mapreduce(*argv, env={"MR_SPLIT_SIZE": "ten", "TYPE": "master", "MR_PORT": "0"}, timeout=60))
    assert line == "mapreduce: MR_SPLIT_SIZE='ten' is not an integer"
