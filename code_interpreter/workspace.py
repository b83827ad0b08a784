"""A session's directory on this host: the /mnt/data its executions see.

Earlier code in the session may have planted symlinks anywhere in it. Writes here therefore walk
the path one directory descriptor at a time with ``O_NOFOLLOW`` and create the file with
``O_EXCL``, so an input file can never land outside the directory; reads go through
``sandbox.open_output``, which refuses links the same way.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from django.conf import settings

from code_interpreter.keyed_locks import KeyedLocks
from code_interpreter.sandbox import scan_outputs

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
Snapshot = dict[str, tuple[int, float]]  # relative path -> (size, mtime)


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def sessions_root() -> Path:
    return Path(settings.CODE_INTERPRETER_SESSIONS_DIR)


def session_dir(session_id: str) -> Path:
    return sessions_root() / session_id


def ensure_dir(session_id: str) -> tuple[Path, bool]:
    """The session's directory and whether it had to be created."""
    path = session_dir(session_id)
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise RuntimeError(f"{path} is not a directory") from None
        return path, False
    except FileNotFoundError:
        sessions_root().mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o755, exist_ok=True)
    return path, True


def _open_parent(workdir: Path, parts: list[str]) -> int:
    """A descriptor of the directory that will hold ``parts[-1]``, made as needed, links removed."""
    fd = os.open(workdir, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:  # a link or a file where a directory must be: it goes
                _remove_entry(fd, part)
                os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_entry(dir_fd: int, name: str) -> None:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def write_file(workdir: Path, relative_path: str, source: Readable) -> tuple[int, float]:
    """Copy ``source`` to ``relative_path`` below workdir, replacing what was there."""
    parts = relative_path.split("/")
    dir_fd = _open_parent(workdir, parts)
    try:
        _remove_entry(dir_fd, parts[-1])
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(parts[-1], flags, 0o644, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
        info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(dir_fd)
    return info.st_size, info.st_mtime


def remove_file(workdir: Path, relative_path: str) -> None:
    """Remove one entry below workdir if it is there; links are removed, never followed."""
    parts = relative_path.split("/")
    try:
        fd = os.open(workdir, _DIR_FLAGS)
    except FileNotFoundError:
        return
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        _remove_entry(fd, parts[-1])
    except OSError:
        pass  # a component is missing or is not a directory: nothing of ours is there
    finally:
        os.close(fd)


def snapshot(workdir: Path, *, max_files: int) -> Snapshot:
    return {
        found.relative_path: (found.size, found.mtime)
        for found in scan_outputs(workdir, max_files=max_files)
    }


def remove_dir(session_id: str) -> None:
    """Remove a session's directory (``rmtree`` works on descriptors: links are not followed)."""
    path = session_dir(session_id)
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


_locks = KeyedLocks()


@contextmanager
def session_lock(session_id: str) -> Iterator[None]:
    """One execution at a time in a session's directory (within this process)."""
    with _locks.hold(session_id):
        yield
