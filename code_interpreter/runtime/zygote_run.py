"""Running the caller's code in a zygote's child, and ending the process as the interpreter would.

The end is what ``PyErr_Print`` and ``Py_FinalizeEx`` do: SystemExit codes (a non-integer code
is printed, status 1), uncaught exceptions through ``sys.excepthook`` (status 1), non-daemon
threads joined, atexit handlers run, stdio flushed (status 120 when stdout cannot be), then
``__main__`` cleared and garbage collected so ``__del__`` methods run and files still open are
flushed, and an uncaught KeyboardInterrupt ends the process with SIGINT. The interpreter's own
teardown of every preloaded module is skipped (``os._exit``): it would cost more than the run.

User code runs under one frame compiled as ``sys``, line 1: a fresh interpreter attributes a
warning whose stacklevel points past the main module to "sys:1", and so does this. Tracebacks
leave the zygote's frames out.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import linecache
import os
import runpy
import signal
import socket
import sys
import types
from importlib.machinery import SourceFileLoader
from typing import Any, NoReturn

from code_interpreter.runtime import zygote_wire as wire
from code_interpreter.runtime.zygote_launch import Plan

_TRAMPOLINE = compile("_call(*_args)", "sys", "exec")
_BUFFERED = (io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)
CELLS_DIR = "/tmp/.python-state"  # noqa: S108 - the sandbox's private /tmp
_UNRAISABLE_ARGS: type[Any] | None = None


def capture_unraisable_type() -> None:
    """sys.UnraisableHookArgs is not exposed; take its type from one harmless report."""
    global _UNRAISABLE_ARGS
    seen: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append

    class _Reporter:
        def __del__(self) -> None:
            raise RuntimeError

    try:
        _Reporter()
        gc.collect()
    finally:
        sys.unraisablehook = hook
    _UNRAISABLE_ARGS = type(seen[0]) if seen else None


def run_plan(plan: Plan, namespace: dict[str, Any]) -> tuple[int, bool]:
    """Run the invocation's code; (exit status, whether a KeyboardInterrupt went uncaught)."""
    if plan.mode == "module":
        return _outcome(run_guarded(runpy._run_module_as_main, (plan.target, True)))  # type: ignore[attr-defined]
    try:
        if plan.mode == "command":
            code = compile(plan.target, "<string>", "exec", dont_inherit=True)
        elif plan.mode == "stdin":
            namespace.update(__file__="<stdin>", __cached__=None)
            code = compile(_read_all(0), "<stdin>", "exec", dont_inherit=True)
        else:
            namespace.update(__file__=plan.target, __cached__=None)
            namespace["__loader__"] = SourceFileLoader("__main__", plan.target)
            with open(plan.target, "rb") as file:
                code = compile(file.read(), plan.target, "exec", dont_inherit=True)
    except BaseException as exc:  # a SyntaxError is reported like one raised by the code
        return _outcome(exc)
    try:
        return _outcome(run_guarded(exec, (code, namespace)))
    finally:
        if plan.mode == "file":
            namespace.pop("__file__", None)
            namespace.pop("__cached__", None)


def run_chunk(
    code: str, args: list[str], number: int, namespace: dict[str, Any]
) -> tuple[int, bool]:
    """One stateful chunk in ``namespace``; (exit status, whether it ended the state).

    Its source is kept in a file, so tracebacks show the lines of earlier chunks too (the
    interpreter's traceback printer reads files, not linecache)."""
    filename = _keep_source(code, number)
    sys.argv = [filename, *args]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        escaped = run_guarded(exec, (compile(code, filename, "exec", dont_inherit=True), namespace))
    except BaseException as exc:  # a SyntaxError, or an interrupt before the code ran
        escaped = exc
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # between chunks nothing may interrupt
    if escaped is None:
        return 0, False
    return report_uncaught(escaped), isinstance(escaped, SystemExit)


def _keep_source(code: str, number: int) -> str:
    path = f"{CELLS_DIR}/cell-{number}.py"
    try:
        os.makedirs(CELLS_DIR, mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as source:
            source.write(code)
    except OSError:  # a full /tmp: tracebacks without source lines
        path = f"<cell {number}>"
        linecache.cache[path] = (len(code), None, code.splitlines(True), path)
    return path


def run_guarded(call: Any, args: tuple[Any, ...]) -> BaseException | None:
    """Run user code; returns what escaped it, for the interpreter's treatment."""
    try:
        exec(_TRAMPOLINE, {"__name__": "sys", "_call": call, "_args": args})  # noqa: S102
    except BaseException as exc:
        return exc
    return None


def _outcome(escaped: BaseException | None) -> tuple[int, bool]:
    if escaped is None:
        return 0, False
    return report_uncaught(escaped), isinstance(escaped, KeyboardInterrupt)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def report_uncaught(exc: BaseException) -> int:
    """PyErr_Print: the exit status of a SystemExit, else the traceback through excepthook."""
    if isinstance(exc, SystemExit):
        return exit_status(exc)
    traceback = _strip_own_frames(exc.__traceback__)
    exc.__traceback__ = traceback
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, traceback
    hook = getattr(sys, "excepthook", None)
    if hook is None:
        _write_stderr("sys.excepthook is missing\n")
        sys.__excepthook__(type(exc), exc, traceback)
        return 1
    try:
        hook(type(exc), exc, traceback)
    except SystemExit as hook_exit:
        return exit_status(hook_exit)
    except BaseException as hook_error:
        _write_stderr("Error in sys.excepthook:\n")
        hook_error.__traceback__ = _strip_own_frames(hook_error.__traceback__)
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        _write_stderr("\nOriginal exception was:\n")
        sys.__excepthook__(type(exc), exc, traceback)
    return 1


def exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):  # C's (int)PyLong_AsLong(code)
        value = code if -(2**63) <= code < 2**63 else -1
        return (value + 2**31) % 2**32 - 2**31
    with contextlib.suppress(Exception):  # the interpreter ignores it too
        if sys.stderr is not None:
            sys.stderr.write(str(code))
        else:
            os.write(2, os.fsencode(str(code)))
    _write_stderr("\n")
    return 1


def _strip_own_frames(traceback: types.TracebackType | None) -> types.TracebackType | None:
    own = {code.__code__ for code in (run_guarded, run_plan, run_chunk, report_uncaught)}
    own.add(_TRAMPOLINE)
    while traceback is not None and traceback.tb_frame.f_code in own:
        traceback = traceback.tb_next
    return traceback


def _write_stderr(text: str) -> None:
    try:
        if sys.stderr is not None:
            sys.stderr.write(text)
            return
    except Exception:  # noqa: S110 - then straight to fd 2, as PySys_WriteStderr falls back
        pass
    with contextlib.suppress(OSError):
        os.write(2, text.encode("utf-8", "backslashreplace"))


def finalize(status: int, namespace: dict[str, Any]) -> int:
    """Py_FinalizeEx's observable part; the status becomes 120 if stdout cannot be flushed."""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException as exc:
            _unraisable(exc, threading)
    atexit._run_exitfuncs()
    ok = flush_stdio()
    _clear_namespace(namespace)
    ok = flush_stdio(report=False) and ok  # what finalizers printed; a failure was reported
    return status if ok else 120


def _clear_namespace(namespace: dict[str, Any]) -> None:
    """Module teardown: underscored names, then the rest, then collect; files still open are
    flushed as their deallocation would flush them."""
    for first in (True, False):
        for name in list(namespace):
            private = name.startswith("_") and not name.startswith("__")
            if name != "__builtins__" and (private or not first):
                namespace[name] = None
    collect_garbage()
    for obj in gc.get_objects():  # the zygote's own objects are frozen, hence not listed
        if isinstance(obj, _BUFFERED):
            try:
                if not obj.closed:
                    obj.flush()
            except Exception:  # noqa: S112 - deallocation ignores it too
                continue


def collect_garbage() -> None:
    """What a full collection finds, for what the run made (the zygote's objects are frozen).

    When none of the run's objects has reached the oldest generation, collecting the younger two
    finds the same garbage without emptying the free lists, which a full collection does: in a
    fork of the zygote that writes to hundreds of pages it still shares (copy-on-write faults,
    most of a millisecond at the end of every served run)."""
    if gc.get_objects(2):
        gc.collect()
    else:
        gc.collect(1)


def flush_stdio(*, report: bool = True) -> bool:
    ok = True
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        if stream is None or getattr(stream, "closed", False):
            continue
        try:
            stream.flush()
        except Exception as exc:
            ok = False
            if name == "stdout" and report:
                _unraisable(exc, stream)
    return ok


def _unraisable(exc: BaseException, obj: object) -> None:
    if _UNRAISABLE_ARGS is None:
        return
    with contextlib.suppress(Exception):  # a broken hook must not stop the exit
        # As PyErr_WriteUnraisable reports an error raised in C: no traceback.
        sys.unraisablehook(_UNRAISABLE_ARGS((type(exc), exc, None, None, obj)))


def end(status: int, interrupted: bool, conn_fd: int, conn_id: tuple[int, int]) -> NoReturn:
    """Report the exit status to the client at once (the teardown of a large process takes a
    while), then exit; an uncaught KeyboardInterrupt ends the process with SIGINT."""
    sigint = interrupted and signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if interrupted and not sigint:
        status = 128 + signal.SIGINT
    for name in os.listdir("/proc/self/fd"):
        if int(name) != conn_fd:
            with contextlib.suppress(OSError):  # the listing's own descriptor
                os.close(int(name))
    report = int(signal.SIGINT) if sigint else (status & 0xFF) << 8
    try:
        info = os.fstat(conn_fd)
        if (info.st_dev, info.st_ino) == conn_id:  # user code may have reused the number
            wire.send(socket.socket(fileno=conn_fd), wire.Kind.ENDED, report)
    except OSError:
        pass
    if sigint:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status)
