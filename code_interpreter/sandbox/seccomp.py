"""A small seccomp filter for the sandbox, as the classic BPF program bubblewrap's --seccomp reads.

It refuses what an unprivileged process can still use to reach rarely-hardened kernel code:
new user namespaces (under a root-run service the sandbox has no user namespace of its own, so
``--disable-userns`` is not available there), keyrings, BPF, perf events, userfaultfd and
io_uring. It also refuses System V shared memory and message queues: they outlive every process
that made them and no process's memory shows them, so the memory supervisor
(``sandbox.memory``) could not count them (POSIX shared memory lives in the sandbox's
``/dev/shm``, which it counts). Everything else is allowed: the namespaces, the uid and the
limits do the rest.
"""

from __future__ import annotations

import platform
import struct
from functools import lru_cache

# linux/filter.h and linux/seccomp.h
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38
_CLONE_NEWUSER = 0x10000000
# A process cloned with CLONE_PARENT is its grandparent's child: from a warm sandbox's served
# python3 that is the zygote, whose children the sweep between runs spares.
_CLONE_PARENT = 0x00008000
_X32_SYSCALL_BIT = 0x40000000

# Offsets in struct seccomp_data: nr, arch, instruction pointer, args (low word first).
_NR, _ARCH, _ARG0_LOW = 0, 4, 16


_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "clone": 56,
            "unshare": 272,
            "clone3": 435,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "shmget": 29,
            "msgget": 68,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "unshare": 97,
            "clone3": 435,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "shmget": 194,
            "msgget": 186,
        },
    ),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


@lru_cache(maxsize=1)
def seccomp_program() -> bytes | None:
    """The filter for this machine's architecture, or None where it is not known."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    denied_enosys = [numbers[name] for name in ("clone3", "io_uring_setup")]
    denied_enosys += [numbers["io_uring_enter"], numbers["io_uring_register"]]
    denied_eperm = [
        numbers[name]
        for name in (
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "shmget",
            "msgget",
        )
    ]
    allow = _insn(_RET_K, _RET_ALLOW)
    eperm = _insn(_RET_K, _RET_ERRNO | _EPERM)
    enosys = _insn(_RET_K, _RET_ERRNO | _ENOSYS)

    # Tail shared by the jumps below: [check NEWUSER|PARENT in arg0] [allow] [eperm] [enosys].
    check_flags = [
        _insn(_LD_W_ABS, _ARG0_LOW),
        _insn(_JSET_K, _CLONE_NEWUSER | _CLONE_PARENT, jt=1, jf=0),  # -> eperm : allow
        allow,
        eperm,
    ]
    tests: list[tuple[int, str]] = [(nr, "enosys") for nr in denied_enosys]
    tests += [(nr, "eperm") for nr in denied_eperm]
    tests += [(numbers["clone"], "flags"), (numbers["unshare"], "flags")]

    body: list[bytes] = []
    # Layout after the tests: [allow][check_flags x4][enosys]; eperm is inside check_flags.
    after_tests = len(tests)
    for index, (nr, action) in enumerate(tests):
        remaining = after_tests - index - 1  # instructions left in the test list after this one
        allow_at = remaining  # first instruction after the tests: allow
        target = {
            "flags": allow_at + 1,
            "eperm": allow_at + 4,
            "enosys": allow_at + 5,
        }[action]
        body.append(_insn(_JEQ_K, nr, jt=target, jf=0))
    program = [
        _insn(_LD_W_ABS, _ARCH),
        _insn(_JEQ_K, audit_arch, jt=1, jf=0),
        eperm,  # another ABI (int 0x80 on x86_64, say) would dodge the numbers below
        _insn(_LD_W_ABS, _NR),
        _insn(_JSET_K, _X32_SYSCALL_BIT, jt=0, jf=1),
        eperm,  # x32 system calls on x86_64: never needed here
        *body,
        allow,
        *check_flags,
        enosys,
    ]
    return b"".join(program)
