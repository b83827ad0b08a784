"""Warm per-session sandboxes through /exec: reuse, Python state, limits, bounds, isolation."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from pytest_django import Settings

from code_interpreter import zygote_client
from code_interpreter.sandbox import warm, warm_python
from tests.code_interpreter.conftest import OTHER_USER, USER, post_exec

pytestmark = pytest.mark.usefixtures("sandbox_ready")

AGENT = "warm_agent.py"


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    warm.pool.clear()
    yield
    warm.pool.clear()


def run(api: Client, code: str, *, lang: str = "bash", user: str = USER, **body: Any) -> Any:
    response = post_exec(api, {"lang": lang, "code": code, "user_id": user, **body})
    assert response.status_code == 200, response.content
    return response.json()


def caller(user: str) -> str:
    return f"anonymous/user:{user}"


def test_a_session_stays_warm_between_its_executions(api: Client) -> None:
    first = run(api, "tr '\\0' ' ' < /proc/1/cmdline")
    assert AGENT not in first["stdout"]  # a first execution runs cold, as before
    session = first["session_id"]
    second = run(api, "tr '\\0' ' ' < /proc/1/cmdline; echo kept > /tmp/mark", session_id=session)
    assert AGENT in second["stdout"], second
    third = run(api, "cat /tmp/mark; python3 -c 'print(6 * 7)'", session_id=session)
    assert third["stdout"] == "kept\n42\n", third
    assert warm.pool.alive(caller(USER)) == 1


def test_python_state_lives_on_only_when_asked(api: Client) -> None:
    first = run(api, "x = 41", lang="py", stateful=True)
    session = first["session_id"]
    again = run(api, "print(x + 1)", lang="py", stateful=True, session_id=session)
    assert (again["stdout"], again["stderr"]) == ("42\n", ""), again
    plain = run(api, "print(x)", lang="py", session_id=session)
    assert "NameError" in plain["stderr"]  # not stateful: a new process, as LibreChat says
    still = run(api, "x += 1; print(x)", lang="py", stateful=True, session_id=session)
    assert still["stdout"] == "42\n", still


def test_lost_state_is_said_in_one_line(api: Client) -> None:
    session = run(api, "x = 41", lang="py", stateful=True)["session_id"]
    warm.pool.close_all()  # the sandbox went cold
    lost = run(api, "print(x)", lang="py", stateful=True, session_id=session)
    assert lost["stderr"].startswith(zygote_client.STATE_LOST_NOTE + "\n"), lost
    assert "NameError" in lost["stderr"]
    run(api, "x = 1", lang="py", stateful=True, session_id=session)
    kept = run(api, "print(x)", lang="py", stateful=True, session_id=session)
    assert (kept["stdout"], kept["stderr"]) == ("1\n", ""), kept


def test_a_sandbox_that_passes_a_limit_is_ended_whole(api: Client) -> None:
    session = run(api, "y = 2", lang="py", stateful=True)["session_id"]
    run(api, "echo here > /tmp/mark", session_id=session)
    slow = run(api, "sleep 30", session_id=session, timeout=500)
    assert slow["status"] == "timeout", slow
    assert warm.pool.alive() == 0
    cold = run(api, "cat /tmp/mark 2>&1; tr '\\0' ' ' < /proc/1/cmdline", session_id=session)
    assert "No such file" in cold["stdout"], cold
    assert AGENT in cold["stdout"], cold
    lost = run(api, "print(y)", lang="py", stateful=True, session_id=session)
    assert lost["stderr"].startswith(zygote_client.STATE_LOST_NOTE), lost


def test_an_output_flood_ends_the_warm_sandbox(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MAX_OUTPUT_BYTES = 4096
    session = run(api, "true")["session_id"]
    run(api, "echo here > /tmp/mark", session_id=session)
    flood = run(api, "yes", session_id=session)
    assert flood["status"] == "OL", flood
    after = run(api, "cat /tmp/mark 2>&1", session_id=session)
    assert "No such file" in after["stdout"]


def test_nothing_an_execution_started_outlives_it(api: Client) -> None:
    session = run(api, "true")["session_id"]
    run(api, "echo here > /tmp/mark", session_id=session)
    started = run(
        api,
        "sleep 300 & setsid sleep 301 & (python3 -c 'import time; time.sleep(302)' &) ; echo go",
        session_id=session,
    )
    assert started["stdout"] == "go\n"
    # What it left was killed, and the sandbox with it: the next run starts a new one.
    assert warm.pool.alive() == 0
    seen = run(api, "cat /tmp/mark 2>&1; ps -eo args", session_id=session)["stdout"]
    assert "No such file" in seen
    assert "sleep" not in seen, seen
    # A run that leaves nothing keeps the sandbox: the agent and the zygote family, no more.
    again = run(api, "ps -eo args", session_id=session)["stdout"]
    assert AGENT in again
    assert warm.pool.alive() == 1


def test_an_execution_started_by_the_agent_can_be_ended_by_its_own_signals(api: Client) -> None:
    """The agent ignores SIGTERM, SIGHUP and SIGQUIT (only the host ends the sandbox); what it
    starts has them back."""
    session = warm_session(api)
    ended = run(
        api,
        "for sig in TERM HUP; do sleep 30 & kill -$sig $!; wait $!; echo $?; done",
        session_id=session,
        timeout=10_000,
    )
    # (bash starts background jobs with SIGINT and SIGQUIT ignored, as it always does)
    assert ended["stdout"] == "143\n129\n", ended


def test_two_callers_see_nothing_of_each_other(api: Client) -> None:
    hint = "conversation-1"
    mine = run(api, "secret = 'mine'", lang="py", stateful=True, runtime_session_hint=hint)
    run(api, "echo mine > /tmp/mine; echo mine > mine.txt", runtime_session_hint=hint)
    theirs = run(
        api,
        "print(globals().get('secret'))",
        lang="py",
        stateful=True,
        user=OTHER_USER,
        runtime_session_hint=hint,
    )
    assert theirs["session_id"] != mine["session_id"]
    assert theirs["stdout"] == "None\n", theirs
    look = run(
        api, "ls /tmp /mnt/data; ps -eo uid=,args=", user=OTHER_USER, runtime_session_hint=hint
    )
    assert look["session_id"] == theirs["session_id"]
    assert "mine" not in look["stdout"], look
    processes = [line.split(None, 1) for line in look["stdout"].splitlines() if " /" in line]
    assert sum(AGENT in args for _, args in processes) == 1, look  # its own agent, no other
    assert len({uid for uid, _ in processes} - {"0"}) == 1, look  # and one uid: its session's
    again = run(api, "print(secret)", lang="py", stateful=True, runtime_session_hint=hint)
    assert (again["session_id"], again["stdout"]) == (mine["session_id"], "mine\n"), again
    assert warm.pool.alive(caller(USER)) == warm.pool.alive(caller(OTHER_USER)) == 1


def test_a_hint_is_checked(api: Client) -> None:
    for bad in ("a b", "x" * 129, 7, "é"):
        response = post_exec(
            api, {"lang": "bash", "code": "true", "user_id": USER, "runtime_session_hint": bad}
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid"
    response = post_exec(api, {"lang": "bash", "code": "true", "stateful": "yes"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid")


def test_a_hint_names_one_warm_sandbox_per_caller(api: Client) -> None:
    first = run(api, "echo one > /tmp/mark", runtime_session_hint="h:1")
    other = run(api, "true", session_id=run(api, "true")["session_id"], runtime_session_hint="h:1")
    assert other["session_id"] != first["session_id"]  # the hint moved to the session named
    after = run(api, "cat /tmp/mark 2>&1", runtime_session_hint="h:1")
    assert after["session_id"] == other["session_id"]
    assert warm.pool.alive(caller(USER)) == 1


def test_warm_sandboxes_are_bounded_per_caller_and_per_host(
    api: Client, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_WARM_MAX_PER_CALLER = 2
    code_settings.CODE_INTERPRETER_WARM_MAX = 3
    sessions = [run(api, "true")["session_id"] for _ in range(3)]
    for session in sessions:
        run(api, "echo warm > /tmp/mark", session_id=session)
    assert warm.pool.alive(caller(USER)) == 2
    # The least recently used one ended first: the first session starts cold again.
    assert "No such file" in run(api, "cat /tmp/mark 2>&1", session_id=sessions[0])["stdout"]
    assert run(api, "cat /tmp/mark", session_id=sessions[2])["stdout"] == "warm\n"
    other = run(api, "true", user=OTHER_USER)["session_id"]
    run(api, "true", user=OTHER_USER, session_id=other)
    other2 = run(api, "true", user=OTHER_USER)["session_id"]
    run(api, "true", user=OTHER_USER, session_id=other2)
    assert warm.pool.alive() == 3
    assert warm.pool.alive(caller(OTHER_USER)) == 2


def test_an_idle_warm_sandbox_ends(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_WARM_IDLE_S = 0.2
    session = run(api, "true")["session_id"]
    run(api, "true", session_id=session)
    assert warm.pool.alive() == 1
    deadline = time.monotonic() + 10
    while warm.pool.alive():
        assert time.monotonic() < deadline, "the idle sandbox was never ended"
        time.sleep(0.05)


def test_warm_sandboxes_can_be_turned_off(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_WARM_MAX = 0
    session = run(api, "true")["session_id"]
    again = run(api, "tr '\\0' ' ' < /proc/1/cmdline", session_id=session)
    assert AGENT not in again["stdout"]
    assert warm.pool.alive() == 0


def test_a_sandbox_over_its_memory_is_ended_whole(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MEMORY_BYTES = 256 * 1024**2
    session = run(api, "true")["session_id"]
    run(api, "echo here > /tmp/mark", session_id=session)
    bomb = run(api, "block = bytearray(400 * 2**20)\nprint('held')", lang="py", session_id=session)
    assert bomb["status"] == "oom", bomb
    assert not bomb["stdout"].startswith("held")
    assert warm.pool.alive() == 0
    after = run(api, "cat /tmp/mark 2>&1", session_id=session)
    assert "No such file" in after["stdout"]


def test_stateful_chunks_get_their_arguments(api: Client) -> None:
    body = run(api, "import sys; print(sys.argv[1:])", lang="py", stateful=True, args=["a", "b"])
    assert body["stdout"] == "['a', 'b']\n", body


def test_a_state_ended_by_the_code_is_said_lost_next_time(api: Client) -> None:
    session = run(api, "x = 1", lang="py", stateful=True)["session_id"]
    ended = run(api, "raise SystemExit(3)", lang="py", stateful=True, session_id=session)
    assert ended["code"] == 3, ended
    lost = run(api, "print(x)", lang="py", stateful=True, session_id=session)
    assert lost["stderr"].startswith(zygote_client.STATE_LOST_NOTE), lost
    assert "NameError" in lost["stderr"]


def test_a_callers_hints_are_bounded_by_its_session_cap(code_settings: Settings) -> None:
    """A new hint on every call must not grow the process: the oldest hints are forgotten."""
    code_settings.CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER = 3
    pool = warm.Pool()
    for n in range(50):
        pool.hinted("user:a", f"hint-{n}", f"session-{n}")
    pool.hinted("user:b", "theirs", "session-b")
    assert list(pool.hints["user:a"].items()) == [
        (f"hint-{n}", f"session-{n}") for n in (47, 48, 49)
    ]
    assert pool.hinted("user:a", "hint-0", None) is None
    assert pool.hinted("user:b", "theirs", None) == "session-b"  # one caller's flood: not theirs


# -- py executions the zygote serves itself ---------------------------------------------------

FACTS = r"""
import json, os, resource, signal, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({
    "cwd": os.getcwd(),
    "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
    "umask": os.umask(0o022),
    "nice": os.nice(0),
    "rlimits": [resource.getrlimit(number) for number in range(16)],
    "environ": {k: v for k, v in os.environ.items() if k != "SANDBOX_PY_ZYGOTE"},
    "argv": sys.argv,
    "executable": sys.executable,
    "path": sys.path,
    "status": {key: status[key].strip() for key in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp",
                                                     "SigBlk", "SigIgn")},
    "sigint": str(signal.getsignal(signal.SIGINT)),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))[:3],
    "stdin": sys.stdin.read(),
}))
"""

PROCESS_TREE = r"""
import os
tree = {}
for name in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{name}/stat").read()
    except OSError:
        continue
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    tree[int(name)] = (int(stat.rsplit(")", 1)[1].split()[1]), comm)
parent = tree[os.getpid()][0]
print(open(f"/proc/{parent}/cmdline").read().replace("\0", " "))
print(sorted(comm for pid, (ppid, comm) in tree.items() if ppid == 1))
"""


PYTHON_IGNORES = 1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)  # CPython's own


def _status_field(name: str) -> str:
    """A field of this (the service's) process's /proc/self/status."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":\t", 1) for line in status.read().splitlines())
    return fields[name].strip()


def warm_session(api: Client, **body: Any) -> str:
    """A session whose warm sandbox's zygote has preloaded (so python3 is served)."""
    session: str = run(api, "true", **body)["session_id"]
    run(api, "true", session_id=session, **body)
    [entry] = warm.pool.entries.values()
    assert entry.sandbox.wait_for_zygote(60, light=True)
    return session


def test_a_warm_py_execution_is_the_zygotes_fork_with_nothing_started_between(
    api: Client,
) -> None:
    session = warm_session(api)
    served = run(api, PROCESS_TREE, lang="py", session_id=session)
    parent, started_by_pid_1 = served["stdout"].splitlines()
    # Standard library only: the light zygote's fork (the preloaded modules would be of no use).
    assert "code_interpreter.runtime.zygote --socket /run/zygote/light.sock" in parent, served
    # No python3 client (nor sandbox-dropuid) of the agent's: only the two zygotes are PID 1's.
    assert started_by_pid_1 == "['python3.11', 'python3.11']", served
    data_stack = run(api, "import numpy\n" + PROCESS_TREE, lang="py", session_id=session)
    assert "--socket /run/zygote/python.sock" in data_stack["stdout"], data_stack
    # From bash, python3 is the client's, which the preloaded zygote serves as before.
    script = f"cat > /tmp/tree.py <<'EOF'\n{PROCESS_TREE}\nEOF\npython3 /tmp/tree.py"
    via_bash = run(api, script, session_id=session)
    assert "--socket /run/zygote/python.sock" in via_bash["stdout"], via_bash


def test_which_zygote_serves_which_code() -> None:
    assert warm_python.standard_library_only("import os, json\nfrom collections import abc")
    assert warm_python.standard_library_only("print(1)")
    assert warm_python.standard_library_only("def broken(:")  # reported the same either way
    assert not warm_python.standard_library_only("import numpy as np")
    assert not warm_python.standard_library_only("from matplotlib import pyplot")
    assert not warm_python.standard_library_only("import os\nimport helpers  # a user module")
    assert not warm_python.standard_library_only("from . import sibling")
    assert not warm_python.standard_library_only("x = 1\n" * 40_000)  # not parsed at all


def test_a_served_py_execution_gets_what_a_cold_one_gets(api: Client) -> None:
    """Everything a process inherits, compared with a cold execution's real interpreter."""
    cold = run(api, FACTS, lang="py", args=["one", "two"])
    session = cold["session_id"]
    warm_session_id = warm_session(api)
    assert warm_session_id != session
    served = run(api, FACTS, lang="py", args=["one", "two"], session_id=warm_session_id)
    assert served["stderr"] == "", served
    assert cold["stderr"] == "", cold
    facts, expected = json.loads(served["stdout"]), json.loads(cold["stdout"])
    # Each session has its own uid; the rest is the same.
    assert facts.pop("ids")[0] != expected.pop("ids")[0]
    # A cold sandbox inherits the signals its service ignores (under nohup, SIGHUP); a warm
    # execution starts with the dispositions a new interpreter sets, whatever the service's.
    classic = (1 << 31) - 1  # signals 1-31: glibc's own (32, 33) are set alike everywhere
    inherited = int(_status_field("SigIgn"), 16) & ~PYTHON_IGNORES & classic
    cold_ignores = int(expected["status"].pop("SigIgn"), 16)
    served_ignores = int(facts["status"].pop("SigIgn"), 16)
    assert served_ignores & inherited == 0
    assert served_ignores & ~inherited == cold_ignores & ~inherited
    # The cold sandbox's init is a shell, which exports these; a warm sandbox's agent does not.
    assert set(expected["environ"]) - set(facts["environ"]) == {"PWD", "SHLVL"}
    assert set(facts["environ"]) <= set(expected["environ"])
    expected["environ"] = {k: v for k, v in expected["environ"].items() if k in facts["environ"]}
    assert facts == expected


def test_what_the_zygote_cannot_serve_runs_the_usual_way(api: Client) -> None:
    session = warm_session(api)
    run(api, "echo 'NAME = \"mine\"' > json.py", session_id=session)  # shadows a preloaded module
    shadowed = run(
        api, "import json; print(json.NAME, json.__file__)", lang="py", session_id=session
    )
    assert shadowed["stdout"] == "mine /mnt/data/json.py\n", shadowed
    [entry] = warm.pool.entries.values()
    status = zygote_client.zygote_status(entry.sandbox.zygote_socket)
    assert any("json" in reason for reason in status["recent_fallbacks"]), status
    exit_code = run(api, "import sys; print('out'); sys.exit(3)", lang="py", session_id=session)
    assert (exit_code["stdout"], exit_code["code"]) == ("out\n", 3), exit_code
    killed = run(api, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", lang="py",
                 session_id=session)  # fmt: skip
    assert (killed["code"], killed["signal"]) == (None, "SIGKILL"), killed


def test_a_served_run_that_fakes_its_end_is_killed_at_once(api: Client) -> None:
    """The run's connection to the host is in its fd table: a forged "ended" must not let it
    run on (and write) after the host collected the session's files."""
    session = warm_session(api)
    forged = run(
        api,
        "import os, stat, struct, time\n"
        "sockets = [int(fd) for fd in os.listdir('/proc/self/fd')\n"
        "           if os.path.exists(f'/proc/self/fd/{fd}')\n"
        "           and stat.S_ISSOCK(os.stat(f'/proc/self/fd/{fd}').st_mode)]\n"
        "for fd in sockets:\n"
        "    os.write(fd, struct.pack('=4sIiI', b'PYZ1', 13, 0, 0))\n"
        "time.sleep(3)\n"
        "print('ran on', flush=True)\n"
        "open('/mnt/data/late.txt', 'w').write('ran on')\n",
        lang="py",
        session_id=session,
    )
    assert forged["code"] == 0, forged
    assert "ran on" not in forged["stdout"], forged  # ended at the forged end, not 3 s later
    time.sleep(4)
    after = run(api, "ls /mnt/data; ps -eo args", session_id=session)
    assert "late.txt" not in after["stdout"], after
    assert "time.sleep" not in after["stdout"], after
