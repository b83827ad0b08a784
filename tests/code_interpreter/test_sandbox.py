"""The sandbox's contract: languages, the session directory, limits, outputs (real bubblewrap)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from pytest_django import Settings

from code_interpreter import sandbox
from code_interpreter.sandbox import ExecutionResult, Limits, SandboxUnavailable, files
from code_interpreter.sandbox.files import settled_usage

# The folder conftest fails these at once, with the fix, when the sandbox is not installed.
pytestmark = pytest.mark.usefixtures("sandbox_ready")

FAST = Limits(timeout_s=10.0, cpu_s=10)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    session = tmp_path / "session"
    session.mkdir()
    return session


def run(workdir: Path, code: str, lang: str = "py", **kwargs: object) -> ExecutionResult:
    limits = kwargs.pop("limits", FAST)
    assert isinstance(limits, Limits)
    return sandbox.execute(lang=lang, code=code, workdir=workdir, limits=limits, **kwargs)  # type: ignore[arg-type]


# -- languages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("py", "py"),
        ("python", "py"),
        ("Python3", "py"),
        ("js", "js"),
        ("node", "js"),
        ("javascript", "js"),
        ("bash", "bash"),
        ("sh", "bash"),
        ("ts", "ts"),
        ("c", "c"),
        ("cpp", "cpp"),
        ("cobol", None),
        ("", None),
    ],
)
def test_canonical_language(alias: str, canonical: str | None) -> None:
    assert sandbox.canonical_language(alias) == canonical


def test_available_languages_cover_the_required_runtimes() -> None:
    languages = sandbox.available_languages()
    assert {"py", "js", "bash"} <= set(languages)
    assert all(isinstance(text, str) and text for text in languages.values())


def test_unsupported_language_is_refused(workdir: Path) -> None:
    with pytest.raises(ValueError, match="Unsupported language: cobol"):
        run(workdir, "DISPLAY 'HI'.", lang="cobol")


def test_python_has_the_data_libraries(workdir: Path) -> None:
    code = (
        "import numpy, pandas, matplotlib, scipy, sklearn, seaborn, sympy, openpyxl, PIL\n"
        "import matplotlib.pyplot as plt\n"
        "print(matplotlib.get_backend(), pandas.DataFrame({'a': [1, 2]}).a.sum())"
    )
    result = run(workdir, code)
    assert result.status == "ok", result.stderr
    assert result.stdout.lower().split() == ["agg", "3"]


def test_matplotlib_chart_uses_the_prebuilt_font_cache(workdir: Path) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2]); plt.title('chart')\n"
        "plt.savefig('chart.png')\n"
    )
    result = run(workdir, code)
    assert result.status == "ok", result.stderr
    assert "Matplotlib" not in result.stderr  # no "building the font cache" / temp dir warning
    assert (workdir / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bash_has_python3_with_the_same_libraries_and_node(workdir: Path) -> None:
    code = """python3 -c 'import pandas, matplotlib; print("py", pandas.__name__)'
python3 - <<'PY'
import numpy
print("heredoc", numpy.arange(3).sum())
PY
node -e 'console.log("node", 1 + 1)'
"""
    result = run(workdir, code, lang="bash")
    assert result.status == "ok", result.stderr
    assert result.stdout.splitlines() == ["py pandas", "heredoc 3", "node 2"]


@pytest.mark.parametrize(
    ("lang", "code"),
    [
        ("js", "console.log(process.argv.slice(2).join(' '))"),
        ("ts", "const words: string[] = process.argv.slice(2); console.log(words.join(' '))"),
        ("bash", 'echo "$@"'),
        ("py", "import sys; print(' '.join(sys.argv[1:]))"),
        ("c", '#include <stdio.h>\nint main(int c, char **v) { printf("%s %s\\n", v[1], v[2]); }'),
        (
            "cpp",
            "#include <iostream>\n"
            'int main(int c, char **v) { std::cout << v[1] << " " << v[2] << "\\n"; }',
        ),
    ],
)
def test_each_language_runs_with_args(workdir: Path, lang: str, code: str) -> None:
    if sandbox.canonical_language(lang) is None:
        pytest.skip(f"no {lang} toolchain here")
    result = run(workdir, code, lang=lang, args=["hello", "world"])
    assert (result.status, result.stdout, result.exit_code) == ("ok", "hello world\n", 0), (
        result.stderr
    )


def test_javascript_may_use_es_module_syntax(workdir: Path) -> None:
    result = run(
        workdir, "import fs from 'node:fs'; console.log(fs.existsSync('/mnt/data'))", lang="js"
    )
    assert (result.status, result.stdout) == ("ok", "true\n"), result.stderr


# -- the session directory, env, exit codes -----------------------------------------------------


def test_files_persist_in_the_session_and_cwd_is_mnt_data(workdir: Path) -> None:
    (workdir / "input.csv").write_text("a,b\n1,2\n")
    first = run(
        workdir,
        "import os, pandas as pd\nprint(os.getcwd())\n"
        "pd.read_csv('input.csv').to_csv('/mnt/data/out.csv')",
    )
    assert (first.status, first.stdout) == ("ok", "/mnt/data\n"), first.stderr
    second = run(workdir, "cat out.csv && echo more >> input.csv && cat input.csv", lang="bash")
    assert second.status == "ok", second.stderr
    assert "1,2" in second.stdout
    assert second.stdout.endswith("more\n")
    assert (workdir / "out.csv").is_file()


def test_tmp_is_private_to_one_execution(workdir: Path) -> None:
    assert (
        run(workdir, "echo secret > /tmp/note && cat /tmp/note", lang="bash").stdout == "secret\n"
    )
    later = run(workdir, "cat /tmp/note", lang="bash")
    assert later.status == "error"
    assert "No such file" in later.stderr


def test_env_is_passed_and_the_host_environment_is_not(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_SECRET", "do-not-leak")
    result = run(workdir, 'echo "$GREETING"; env', lang="bash", env={"GREETING": "hi"})
    assert result.stdout.startswith("hi\n")
    assert "do-not-leak" not in result.stdout
    assert "SECRET_KEY" not in result.stdout
    with pytest.raises(ValueError, match="Invalid environment variable"):
        run(workdir, "true", lang="bash", env={"BAD=NAME": "x"})


def test_exit_code_and_error_status(workdir: Path) -> None:
    result = run(workdir, "import sys; print('out'); sys.exit(3)")
    assert (result.status, result.exit_code, result.signal, result.stdout) == (
        "error",
        3,
        None,
        "out\n",
    )
    raised = run(workdir, "raise RuntimeError('boom')")
    assert raised.status == "error"
    assert "RuntimeError: boom" in raised.stderr


def test_signals_are_reported(workdir: Path) -> None:
    result = run(workdir, "import ctypes\nctypes.string_at(0)")
    assert (result.status, result.exit_code, result.signal) == ("error", None, 11)
    assert "SIGSEGV" in result.stderr
    child = run(workdir, "sh -c 'kill -ABRT $$'", lang="bash")
    assert (child.status, child.signal) == ("error", 6)


def test_cpu_limit(workdir: Path) -> None:
    result = run(workdir, "while True: pass", limits=Limits(timeout_s=20.0, cpu_s=1))
    assert result.status == "timeout"
    assert "CPU time limit" in result.stderr
    assert result.wall_time_s < 10


def test_timeout_is_clamped_to_the_maximum(settings: Settings, workdir: Path) -> None:
    settings.CODE_INTERPRETER_TIMEOUT_MAX = 1.0
    assert sandbox.clamp_timeout(500) == 1.0
    assert sandbox.clamp_timeout(None) == 30.0
    result = run(workdir, "import time; time.sleep(30)", limits=Limits(timeout_s=30.0))
    assert result.status == "timeout"
    assert result.wall_time_s < 5


def test_default_limits_come_from_settings(settings: Settings) -> None:
    settings.CODE_INTERPRETER_MEMORY_BYTES = 256 * 1024**2
    settings.CODE_INTERPRETER_TIMEOUT_DEFAULT = 12.0
    limits = sandbox.default_limits()
    assert (limits.memory_bytes, limits.timeout_s, limits.max_output_bytes) == (
        256 * 1024**2,
        12.0,
        1024**2,
    )


def test_missing_workdir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        run(tmp_path / "nope", "print(1)")


def test_concurrent_executions_from_threads(tmp_path: Path) -> None:
    results: dict[int, ExecutionResult] = {}

    def worker(index: int) -> None:
        session = tmp_path / f"s{index}"
        session.mkdir()
        results[index] = run(
            session, f"import os; open('mine', 'w').write('{index}'); print(os.listdir('.'))"
        )

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(
        result.status == "ok" and result.stdout == "['mine']\n" for result in results.values()
    )
    assert sorted((tmp_path / f"s{i}" / "mine").read_text() for i in range(6)) == [
        str(i) for i in range(6)
    ]


# -- refusing to run without bubblewrap ---------------------------------------------------------


def test_without_bubblewrap_nothing_runs(settings: Settings, workdir: Path) -> None:
    settings.CODE_INTERPRETER_BWRAP = "/nonexistent/bwrap"
    ready, message = sandbox.sandbox_status()
    assert not ready
    assert "apt-get install -y bubblewrap" in message
    with pytest.raises(SandboxUnavailable) as raised:
        run(workdir, "open('/mnt/data/ran', 'w').close()")
    assert raised.value.permanent
    assert "bubblewrap" in str(raised.value)
    assert not (workdir / "ran").exists()


def test_without_the_runtime_nothing_runs(
    settings: Settings, workdir: Path, tmp_path: Path
) -> None:
    settings.CODE_INTERPRETER_RUNTIME_DIR = str(tmp_path / "no-runtime")
    ready, message = sandbox.sandbox_status()
    assert not ready
    assert "make sandbox" in message
    with pytest.raises(SandboxUnavailable):
        run(workdir, "print(1)")


# -- outputs -----------------------------------------------------------------------------------


def test_scan_outputs_reports_regular_files_in_order(workdir: Path) -> None:
    code = """mkdir -p plots && echo a > b.txt && echo b > a.txt && echo c > plots/p.png
ln -s a.txt link.txt && mkfifo pipe && mkdir empty"""
    assert run(workdir, code, lang="bash").status == "ok"
    outputs = sandbox.scan_outputs(workdir)
    assert [output.relative_path for output in outputs] == ["a.txt", "b.txt", "plots/p.png"]
    assert outputs[0].size == 2
    assert outputs[0].mtime > 0
    assert [o.relative_path for o in sandbox.scan_outputs(workdir, max_files=2)] == [
        "a.txt",
        "b.txt",
    ]


def test_scan_outputs_caps_the_count(workdir: Path) -> None:
    run(workdir, "for i in $(seq -w 1 80); do echo $i > f$i; done", lang="bash")
    outputs = sandbox.scan_outputs(workdir)
    assert len(outputs) == 50
    assert outputs[0].relative_path == "f01"


def test_settled_usage_charges_what_disk_usage_does_after_writeback(tmp_path: Path) -> None:
    """One walk syncs the large files and measures: the figure a later plain walk gives, for
    every kind of entry."""
    (tmp_path / "small").write_bytes(b"x" * 100)
    (tmp_path / "d" / "e").mkdir(parents=True)
    with open(tmp_path / "d" / "e" / "large", "wb") as handle:
        for _ in range(64):  # many small appends: a file of many extents
            handle.write(os.urandom(64 * 1024))
    (tmp_path / "sparse").write_bytes(b"")
    os.truncate(tmp_path / "sparse", 10 * 1024**2)
    (tmp_path / "link").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "pipe")
    settled = settled_usage(tmp_path)
    assert settled == sandbox.disk_usage(tmp_path)
    assert settled >= 4 * 1024**2 + 10 * 1024**2


def test_settled_usage_of_a_file_the_host_cannot_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code made a large file unreadable to its owner: its filesystem is flushed, then the tree
    is measured again (as root the host opens anything, so the refusal is simulated)."""
    with open(tmp_path / "large", "wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(64 * 1024))
    monkeypatch.setattr(files, "_synced", lambda *args: None)
    settled = settled_usage(tmp_path)
    assert settled == sandbox.disk_usage(tmp_path) >= 4 * 1024**2


def test_open_output_reads_files_and_refuses_links(workdir: Path) -> None:
    run(workdir, "mkdir d && echo hi > d/f && ln -s d dl && ln -s d/f fl", lang="bash")
    with sandbox.open_output(workdir, "d/f") as handle:
        assert handle.read() == b"hi\n"
    for bad in ("fl", "dl/f", "../session/d/f", "/etc/passwd", "d", "", "d/../d/f"):
        with pytest.raises(FileNotFoundError):
            sandbox.open_output(workdir, bad)


def test_files_written_by_the_service_are_writable_in_the_sandbox(workdir: Path) -> None:
    upload = workdir / "upload.txt"
    upload.write_text("from the API\n")
    os.chmod(upload, 0o644)
    result = run(workdir, "echo edited >> upload.txt && rm upload.txt && echo gone", lang="bash")
    assert (result.status, result.stdout) == ("ok", "gone\n"), result.stderr


def test_a_sandbox_that_cannot_start_is_reported_not_bypassed(
    settings: Settings, workdir: Path
) -> None:
    settings.CODE_INTERPRETER_TMP_BYTES = -1  # bubblewrap refuses the command line
    ready, message = sandbox.sandbox_status()
    assert not ready
    assert "bubblewrap" in message
    with pytest.raises(sandbox.SandboxError):
        run(workdir, "open('/mnt/data/ran', 'w').close()")
    assert not (workdir / "ran").exists()


def test_system_check_warns_when_the_sandbox_is_missing(settings: Settings) -> None:
    assert sandbox.check_sandbox() == []
    settings.CODE_INTERPRETER_BWRAP = "/nonexistent/bwrap"
    [warning] = sandbox.check_sandbox()
    assert warning.id == "code_interpreter.W001"
    assert "bubblewrap" in warning.msg
