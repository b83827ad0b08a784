"""The session directory as the host sees it: usage, ownership and outputs, never following links.

Code in the sandbox may have swapped any entry for a symlink to a host path. Every walk here goes
through directory file descriptors (``os.fwalk`` with ``follow_symlinks=False``) and every open
uses ``O_NOFOLLOW`` on every component, so a link planted in ``/mnt/data`` names a file on the
host but never reaches it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

# Every entry costs at least this much against the quota: a million empty files is not free.
ENTRY_MIN_BYTES = 4096
# Up to four blocks, a file's extents fit in its inode: no extent-tree block is added later.
SETTLED_BYTES = 4 * ENTRY_MIN_BYTES
_NOT_A_LINK = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class OutputFile:
    relative_path: str  # relative to the session directory, POSIX separators
    size: int
    mtime: float


def _entries(workdir: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative dir, name, lstat) for every entry below workdir, without following links."""
    for dirpath, dirnames, filenames, dirfd in os.fwalk(workdir, follow_symlinks=False):
        relative_dir = os.path.relpath(dirpath, workdir)
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            try:
                info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield ("" if relative_dir == "." else relative_dir), name, info


def disk_usage(workdir: Path) -> int:
    """Bytes charged to the session: allocated or apparent size, whichever is larger."""
    total = 0
    for _, _, info in _entries(workdir):
        total += max(info.st_size, info.st_blocks * 512, ENTRY_MIN_BYTES)
    return total


def settled_usage(workdir: Path) -> int:
    """``disk_usage`` once every file's blocks are allocated, so that the figure a run is
    charged cannot grow later.

    ext4 allocates a delayed write's blocks, and the extent-tree blocks that map them, at
    writeback: ``st_blocks`` counts the data blocks at once but a fragmented file's extent blocks
    only later (tens of KiB over a quota-sized run). ``fdatasync`` forces the allocation. A file
    of at most ``SETTLED_BYTES`` has at most four extents, which live in the inode, so only
    larger files are synced. One the host cannot open (code made it unreadable to its owner)
    is flushed with the rest of its filesystem by ``syncfs`` (not every filesystem of the host:
    code can force this on every run), and the tree walked again. Otherwise
    one walk syncs and measures: a synced file is charged by its status after the sync.
    """
    total, unsynced = 0, False
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(workdir, follow_symlinks=False):
        for name in dirnames + filenames:
            try:
                info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_size > SETTLED_BYTES:
                synced = _synced(name, dirfd, info)
                if synced is None:
                    unsynced = True
                else:
                    info = synced
            total += _charge(info)
    if unsynced:
        _sync_filesystem(workdir)
        return disk_usage(workdir)
    return total


def _sync_filesystem(workdir: Path) -> None:
    """syncfs(2) on the filesystem that holds the session directory; sync(2) where it fails."""
    fd = os.open(workdir, _DIR_FLAGS)
    try:
        if _libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _synced(name: str, dirfd: int, info: os.stat_result) -> os.stat_result | None:
    """The file's status once ``fdatasync`` allocated its blocks; None when the host cannot
    open it, or it went or was replaced meanwhile (then the whole tree is synced and walked)."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOT_A_LINK, dir_fd=dirfd)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_ino != info.st_ino:
            return None
        os.fdatasync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def _charge(info: os.stat_result) -> int:
    return max(info.st_size, info.st_blocks * 512, ENTRY_MIN_BYTES)


def trim_to(workdir: Path, limit: int, *, since: float) -> int:
    """Cut what was written since ``since`` (newest first) until the tree charges at most
    ``limit``, and return its usage: a write past a quota is refused, as a filesystem's would be.

    Regular files are truncated, anything else is removed; all through directory descriptors,
    never following a link.
    """
    used = disk_usage(workdir)
    since -= 0.05  # file times come from a coarser clock than time.time()
    fresh: list[tuple[float, str, str]] = []
    for dirpath, _dirnames, filenames, _dirfd in os.fwalk(workdir, follow_symlinks=False):
        relative_dir = os.path.relpath(dirpath, workdir)
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(name, dir_fd=_dirfd, follow_symlinks=False)
                if info.st_mtime >= since:
                    fresh.append((info.st_mtime, relative_dir, name))
    for _mtime, relative_dir, name in sorted(fresh, reverse=True):
        if used <= limit:
            break
        dir_fd = os.open(workdir / relative_dir, _DIR_FLAGS)
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            excess = used - limit
            if stat.S_ISREG(info.st_mode) and _charge(info) - excess >= ENTRY_MIN_BYTES:
                keep = (info.st_size - excess) // ENTRY_MIN_BYTES * ENTRY_MIN_BYTES
                fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
                try:
                    os.ftruncate(fd, max(0, keep))
                finally:
                    os.close(fd)
            else:
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass  # gone, or not ours to cut: the next one is
        finally:
            os.close(dir_fd)
        used = disk_usage(workdir)
    return used


def hand_over(workdir: Path, *, uid: int, gid: int) -> int:
    """Give the tree to the sandbox's uid (files the API wrote are root's) and return its usage.

    ``chown`` goes through the parent directory's descriptor and never follows a link, so a link
    swapped in by a sandbox still running in the same session cannot redirect it to a host file.
    """
    total = 0
    top = os.stat(workdir, follow_symlinks=False)
    if (top.st_uid, top.st_gid) != (uid, gid):
        os.chown(workdir, uid, gid, follow_symlinks=False)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(workdir, follow_symlinks=False):
        for name in dirnames + filenames:
            try:
                info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if (info.st_uid, info.st_gid) != (uid, gid):
                    os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            total += max(info.st_size, info.st_blocks * 512, ENTRY_MIN_BYTES)
    return total


def scan_outputs(workdir: Path, *, max_files: int = 50) -> list[OutputFile]:
    """Regular files below workdir in path order: no links, devices, FIFOs or sockets."""
    found: list[OutputFile] = []
    for relative_dir, name, info in _entries(workdir):
        if not stat.S_ISREG(info.st_mode):
            continue
        relative = PurePosixPath(relative_dir, name).as_posix() if relative_dir else name
        found.append(OutputFile(relative_path=relative, size=info.st_size, mtime=info.st_mtime))
    found.sort(key=lambda output: output.relative_path)
    return found[:max_files]


def open_output(workdir: Path, relative_path: str) -> BinaryIO:
    """Open a regular file below workdir for reading; no component may be a link or ``..``.

    Raises FileNotFoundError for anything else, so a download never leaves the session directory.
    """
    parts = PurePosixPath(relative_path).parts
    if not parts or any(part in ("", ".", "..", "/") for part in parts):
        raise FileNotFoundError(relative_path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    dirfd = os.open(workdir, flags | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=dirfd)
            except OSError as exc:
                raise FileNotFoundError(relative_path) from exc
            os.close(dirfd)
            dirfd = next_fd
        try:
            fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=dirfd)
        except OSError as exc:  # ELOOP for a link, ENXIO for a socket, ...
            raise FileNotFoundError(relative_path) from exc
    finally:
        os.close(dirfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(relative_path)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
