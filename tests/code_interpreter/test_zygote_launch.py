"""The zygote's serve-or-fall-back rule and its wire format, on the host (no sandbox needed).

test_zygote.py proves the served invocations match the real interpreter inside a sandbox;
this pins each clause of the rule in ``zygote_launch`` on its own.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import socket
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from code_interpreter.runtime import zygote_forks
from code_interpreter.runtime import zygote_launch as launch
from code_interpreter.runtime import zygote_wire as wire
from code_interpreter.runtime.zygote_launch import (
    Facts,
    Identity,
    Plan,
    Unservable,
    plan,
    read_at_start_up,
)

INTERPRETER = (1, 2)
ENV = {"PATH": "", "LANG": "C.UTF-8", "HOME": "/tmp", "MPLBACKEND": "Agg"}


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python3", "python"):
        (bin_dir / name).write_text("")
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.fixture
def facts(venv: Path, tmp_path: Path) -> Facts:
    site = tmp_path / "site-packages"
    site.mkdir()
    identity_path = ("/usr/lib/python3.11", str(site))
    return Facts(
        identities={
            f"{venv}/{name}": Identity(f"{venv}/{name}", f"/usr/bin/{name}", identity_path)
            for name in ("python3", "python")
        },
        environ={**ENV, "PATH": str(venv)},
        interpreter=INTERPRETER,
        rlimits={number: resource.getrlimit(number) for number in range(16)},
        nice=os.getpriority(os.PRIO_PROCESS, 0),
        module_files=frozenset({"json", "numpy", "pandas"}),
        namespace_packages=frozenset({"mpl_toolkits"}),
        loaded=frozenset({"json", "json.decoder", "numpy", "timeit"}),
        quiet=False,
        dont_write_bytecode=False,
        flags_patchable=True,
        stdio=(("utf-8", "surrogateescape"),) * 3,
    )


@pytest.fixture
def cwd(tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "work"
    work.mkdir()
    previous = os.getcwd()
    os.chdir(work)
    yield work
    os.chdir(previous)


def request(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    interpreter: tuple[int, int] = INTERPRETER,
    nice: int | None = None,
    rlimits: dict[int, tuple[int, int]] | None = None,
) -> wire.PythonRequest:
    """A request as the C client encodes it, decoded as the zygote does."""
    limits = {number: resource.getrlimit(number) for number in range(16)}
    limits.update(rlimits or {})
    read_end, write_end = os.pipe()
    fds = [stdin if stdin is not None else read_end, write_end, write_end]
    payload = wire.encode_python_request(
        argv=argv,
        environ=[f"{key}={value}".encode() for key, value in (env or {}).items()],
        fd_targets=[0, 1, 2],
        interpreter=interpreter,
        nice=os.getpriority(os.PRIO_PROCESS, 0) if nice is None else nice,
        rlimits=[limits[number] for number in range(16)],
    )
    cwd_fd = os.open(".", os.O_PATH)
    message = wire.Message(wire.Kind.PYTHON, 0, payload, [cwd_fd, *(os.dup(fd) for fd in fds)])
    os.close(read_end)
    os.close(write_end)
    return wire.decode_python_request(message)


def planned(facts: Facts, argv: list[str], **options: Any) -> Plan:
    env = {**facts.environ, **options.pop("env", {})}
    decoded = request(argv, env=env, **options)
    try:
        return plan(decoded, cwd=os.getcwd(), facts=facts)
    finally:
        decoded.close_fds()


def refused(facts: Facts, argv: list[str], match: str, **options: Any) -> None:
    with pytest.raises(Unservable, match=match):
        planned(facts, argv, **options)


# -- served forms ------------------------------------------------------------------------------


@pytest.mark.usefixtures("cwd")
def test_command_forms(facts: Facts, venv: Path) -> None:
    for argv in (
        ["python3", "-c", "print(1)", "a"],
        ["python3", "-cprint(1)", "a"],
        ["python3", "-uc", "print(1)", "a"],
        ["python3", "-u", "-B", "-q", "-c", "print(1)", "a"],
    ):
        result = planned(facts, argv)
        assert (result.mode, result.target, result.argv) == ("command", "print(1)\n", ("-c", "a"))
        assert result.path[0] == ""
        assert result.identity.executable == f"{venv}/python3"
    flags = planned(facts, ["python3", "-uqB", "-c", "0"])
    assert (flags.unbuffered, flags.quiet, flags.dont_write_bytecode) == (True, True, True)
    environment = planned(
        facts, ["python3", "-c", "0"], env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": ""}
    )
    assert (environment.unbuffered, environment.dont_write_bytecode) == (True, False)


def test_script_module_and_stdin_forms(facts: Facts, cwd: Path) -> None:
    (cwd / "sub").mkdir()
    (cwd / "sub" / "real.py").write_text("print(1)\n")
    (cwd / "link.py").symlink_to("sub/real.py")
    script = planned(facts, ["python3", "--", "link.py", "-c"])
    assert (script.mode, script.target, script.argv) == (
        "file",
        f"{cwd}/link.py",
        ("link.py", "-c"),
    )
    assert script.path[0] == str(cwd / "sub")  # the link's target's directory, as CPython
    module = planned(facts, ["python3", "-m", "tool", "x"])
    assert (module.mode, module.target, module.argv, module.path[0]) == (
        "module",
        "tool",
        ("-m", "x"),
        str(cwd),
    )
    dash = planned(facts, ["python3", "-", "y"])
    assert (dash.mode, dash.argv, dash.path[0]) == ("stdin", ("-", "y"), "")
    assert planned(facts, ["python3"]).argv == ("",)


@pytest.mark.usefixtures("cwd")
def test_executable_as_getpath_finds_it(facts: Facts, venv: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "python3").write_text("")  # not executable: skipped, as getpath skips it
    env = {"PATH": f"{other}:{venv}/"}
    assert planned(facts, ["python3", "-c", "0"], env=env).identity.executable == f"{venv}/python3"
    assert planned(facts, [f"{venv}/python", "-c", "0"]).identity.executable == f"{venv}/python"
    (other / "python3").chmod(0o755)
    refused(facts, ["python3", "-c", "0"], "would run as", env=env)
    refused(facts, ["python3", "-c", "0"], "would run as ''", env={"PATH": ""})
    refused(facts, ["./python3", "-c", "0"], "would run as")
    refused(facts, [f"{venv}/../bin/python3", "-c", "0"], "would run as")
    refused(facts, [f"{venv}/python3", "-c", "0"], "another interpreter", interpreter=(1, 3))


@pytest.mark.usefixtures("cwd")
def test_python_path(facts: Facts, cwd: Path) -> None:
    result = planned(facts, ["python3", "-c", "0"], env={"PYTHONPATH": "lib::/abs/./x:lib"})
    assert result.path == (
        "",
        f"{cwd}/lib",
        str(cwd),
        "/abs/x",
        *facts.identities[next(iter(facts.identities))].path,
    )
    runtime_entry = facts.identities[next(iter(facts.identities))].path[1]
    refused(facts, ["python3", "-c", "0"], "reorders", env={"PYTHONPATH": runtime_entry})


# -- what falls back ----------------------------------------------------------------------------


@pytest.mark.usefixtures("cwd")
@pytest.mark.parametrize(
    "options",
    [
        ["-I"],
        ["-S"],
        ["-E"],
        ["-s"],
        ["-O"],
        ["-X", "dev"],
        ["-W", "error"],
        ["-i"],
        ["-P"],
        ["-b"],
        ["-d"],
        ["-v"],
        ["-x"],
        ["-R"],
        ["-V"],
        ["-h"],
        ["--version"],
        ["-uI"],
    ],
)
def test_options_that_need_a_real_start(facts: Facts, options: list[str]) -> None:
    refused(facts, ["python3", *options, "-c", "0"], "option")


@pytest.mark.usefixtures("cwd")
def test_a_missing_argument_or_argv(facts: Facts) -> None:
    refused(facts, ["python3", "-c"], "without its argument")
    refused(facts, ["python3", "-um"], "without its argument")
    refused(facts, [], "no argv")


@pytest.mark.usefixtures("cwd")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PYTHONHASHSEED", "0"),
        ("PYTHONHOME", "/usr"),
        ("PYTHONWARNINGS", "error"),
        ("PYTHONUTF8", "1"),
        ("LANG", "C"),
        ("LC_ALL", "C.UTF-8"),
        ("TZ", "UTC"),
        ("LD_PRELOAD", "/x.so"),
        ("MPLBACKEND", "svg"),
        ("OPENBLAS_NUM_THREADS", "4"),
    ],
)
def test_start_up_variables_must_match(facts: Facts, name: str, value: str) -> None:
    refused(facts, ["python3", "-c", "0"], name, env={name: value})


def test_which_variables_are_read_at_start_up() -> None:
    assert read_at_start_up("PYTHONHASHSEED")
    assert read_at_start_up("LD_LIBRARY_PATH")
    for per_run in ("PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PATH", "FOO"):
        assert not read_at_start_up(per_run)


@pytest.mark.usefixtures("cwd")
def test_a_malformed_environment(facts: Facts) -> None:
    decoded = request(["python3", "-c", "0"], env={"PATH": facts.environ["PATH"]})
    for broken in ([b"NOEQUALS"], [b"A=1", b"A=2"], [b"=value"]):
        decoded.environ = broken
        with pytest.raises(Unservable, match="environment entry"):
            plan(decoded, cwd=os.getcwd(), facts=facts)
    decoded.close_fds()


@pytest.mark.usefixtures("cwd")
def test_limits_nice_and_stdin(facts: Facts) -> None:
    lower = replace(facts, rlimits={**facts.rlimits, resource.RLIMIT_NOFILE: (1, 1)})
    refused(lower, ["python3", "-c", "0"], "above the zygote's")
    refused(
        facts, ["python3", "-c", "0"], "memory limit", rlimits={resource.RLIMIT_AS: (10**9, -1)}
    )
    refused(facts, ["python3", "-c", "0"], "nice", nice=facts.nice - 1)
    primary, secondary = os.openpty()
    try:
        refused(facts, ["python3"], "terminal", stdin=secondary)
        assert planned(facts, ["python3", "-c", "0"], stdin=secondary).mode == "command"
    finally:
        os.close(primary)
        os.close(secondary)


def test_scripts_that_need_a_real_start(facts: Facts, cwd: Path) -> None:
    (cwd / "dir").mkdir()
    (cwd / "code.pyc").write_bytes(b"whatever")
    (cwd / "magic.py").write_bytes(importlib.util.MAGIC_NUMBER + b"\0" * 12)
    with zipfile.ZipFile(cwd / "app.py", "w") as archive:
        archive.writestr("__main__.py", "print(1)")
    for script, why in [
        ("missing.py", "cannot be opened"),
        ("dir", "cannot be opened|not a regular file"),
        ("code.pyc", "bytecode"),
        ("magic.py", "bytecode"),
        ("app.py", "zip"),
    ]:
        refused(facts, ["python3", script], why)


@pytest.mark.usefixtures("cwd")
def test_modules_already_imported(facts: Facts) -> None:
    refused(facts, ["python3", "-m", "timeit"], "already imported")
    refused(facts, ["python3", "-m", "json"], "already imported")  # json.__main__ is not, json is
    assert planned(facts, ["python3", "-m", "json.tool"]).mode == "module"


@pytest.mark.parametrize(
    ("entry", "shadows"),
    [
        ("json.py", True),
        ("numpy.cpython-311-x86_64-linux-gnu.so", True),
        ("pandas/__init__.py", True),
        ("pandas/other.py", False),  # a directory without __init__ does not hide a package
        ("mpl_toolkits/anything.py", True),  # but adds to a namespace package
        ("jsonx.py", False),
        ("json.txt", False),
    ],
)
def test_shadowing_a_preloaded_module(facts: Facts, cwd: Path, entry: str, shadows: bool) -> None:
    (cwd / entry).parent.mkdir(parents=True, exist_ok=True)
    (cwd / entry).write_text("")
    if shadows:
        refused(facts, ["python3", "-c", "0"], "shadow")
    else:
        assert planned(facts, ["python3", "-c", "0"]).mode == "command"


def test_shadowing_through_python_path(facts: Facts, cwd: Path) -> None:
    (cwd / "lib").mkdir()
    (cwd / "lib" / "json.py").write_text("")
    refused(facts, ["python3", "-c", "0"], "shadow", env={"PYTHONPATH": "lib"})
    (cwd / "lib.zip").write_bytes(b"PK")
    refused(facts, ["python3", "-c", "0"], "not a directory", env={"PYTHONPATH": "lib.zip"})
    assert planned(facts, ["python3", "-c", "0"], env={"PYTHONPATH": "absent"}).mode == "command"


@pytest.mark.usefixtures("cwd")
def test_flags_that_cannot_be_rewritten(facts: Facts) -> None:
    fixed = replace(facts, flags_patchable=False)
    refused(fixed, ["python3", "-q", "-c", "0"], "sys.flags")
    assert planned(fixed, ["python3", "-u", "-c", "0"]).unbuffered


# -- the wire format ----------------------------------------------------------------------------


def test_a_request_round_trips() -> None:
    decoded = request(["python3", "-c", "print('é')"], env={"A": "1", "B": "x=y"})
    try:
        assert decoded.argv == ["python3", "-c", "print('é')"]
        assert decoded.environ == [b"A=1", b"B=x=y"]
        assert decoded.fd_targets == [0, 1, 2]
        assert len(decoded.passed_fds) == 3
        assert decoded.rlimits[resource.RLIMIT_NOFILE] == resource.getrlimit(resource.RLIMIT_NOFILE)
    finally:
        decoded.close_fds()


@pytest.mark.parametrize(
    "damage",
    ["truncated", "counts", "fd numbers", "duplicate targets", "negative target", "no nul"],
)
def test_malformed_requests_are_refused(damage: str) -> None:
    targets = {"duplicate targets": [1, 1], "negative target": [-1, 1]}.get(damage, [0, 1])
    payload = wire.encode_python_request(
        argv=["python3"], environ=[b"A=1"], fd_targets=targets, interpreter=INTERPRETER
    )
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]
    if damage == "truncated":
        payload = payload[:20]
    elif damage == "counts":
        payload = payload.replace(b"A=1\0", b"A=1\0B=2\0")
    elif damage == "fd numbers":
        os.close(fds.pop())
    elif damage == "no nul":
        payload = payload[:-1]
    message = wire.Message(wire.Kind.PYTHON, 0, payload, fds)
    with pytest.raises(wire.WireError):
        wire.decode_python_request(message)
    message.close_fds()


def test_messages_carry_fds_and_refuse_garbage() -> None:
    left, right = socket.socketpair()
    with left, right:
        read_end, write_end = os.pipe()
        wire.send(left, wire.Kind.STARTED, 42, b"payload", [write_end])
        message = wire.receive(right)
        assert (message.kind, message.value, message.payload) == (wire.Kind.STARTED, 42, b"payload")
        os.write(message.fds[0], b"through")
        assert os.read(read_end, 10) == b"through"
        message.close_fds()
        for fd in (read_end, write_end):
            os.close(fd)
        left.sendall(wire.HEADER.pack(b"NOPE", 1, 0, 0))
        with pytest.raises(wire.WireError):
            wire.receive(right)
        left.sendall(wire.HEADER.pack(wire.MAGIC, 1, 0, 100))
        with pytest.raises(wire.WireError):
            wire.receive(right, max_payload=99)
        left.close()
        with pytest.raises(wire.Closed):
            wire.receive(right)


def test_a_spares_rehearsal_plans_a_request_and_keeps_nothing(
    facts: Facts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a new spare runs before it accepts (zygote_forks.rehearse): the request path's
    code, so its copy-on-write faults come while it is idle, and no trace of it after."""
    planned_requests: list[wire.PythonRequest] = []

    def plan_and_record(request: wire.PythonRequest, **kwargs: Any) -> Plan:
        planned_requests.append(request)
        return plan(request, **kwargs)

    monkeypatch.setattr(launch, "plan", plan_and_record)
    fds, streams = sorted(os.listdir("/proc/self/fd")), (sys.stdin, sys.stdout, sys.stderr)
    environ, cwd = dict(os.environ), os.getcwd()
    zygote_forks.rehearse(facts)
    [rehearsed] = planned_requests
    assert rehearsed.argv[1] == wire.__file__  # planned as a script, like a py execution
    assert rehearsed.fd_targets == [0, 1, 2]
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert (sys.stdin, sys.stdout, sys.stderr) == streams
    assert (dict(os.environ), os.getcwd()) == (environ, cwd)
