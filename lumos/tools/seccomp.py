"""A small seccomp filter for the ``Code`` sandbox: no new processes, no cross-process or kernel-wide calls.

The filter is classic BPF, assembled here (standard library only) and handed to bubblewrap
(``bwrap --seccomp FD``), which loads it just before it starts the sandboxed interpreter. It
refuses, with ``EPERM``: ``fork``, ``vfork`` and any ``clone`` without ``CLONE_THREAD`` (threads
stay possible, processes do not: a fork bomb cannot start), and calls that reach past the
process (``ptrace``, ``process_vm_readv``/``writev``, ``mount``, ``unshare``, ``setns``,
``bpf``, ``perf_event_open``, ``keyctl``, ``userfaultfd``, ``io_uring_setup``). ``clone3``
answers ``ENOSYS`` so that the C library falls back to ``clone``, whose flags the filter can read.
Calls of another ABI than the native one (x32, 32-bit) are refused.
"""

from __future__ import annotations

import errno
import platform
import struct

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_CLONE_THREAD = 0x00010000

# arch: (AUDIT_ARCH value, refused syscall numbers, clone, clone3, first number of a foreign ABI or None)
_ARCHES = {
    "x86_64": (0xC000003E, {57, 58, 101, 310, 311, 250, 248, 249, 321, 298, 323, 165, 166, 155, 272, 308, 425,
                            246, 169, 175, 176, 313}, 56, 435, 0x40000000),
    "aarch64": (0xC00000B7, {117, 270, 271, 219, 217, 218, 280, 241, 282, 40, 39, 41, 97, 268, 425, 104, 142,
                             105, 106, 273}, 220, 435, None),
}


def supported() -> bool:
    return platform.machine() in _ARCHES


def filter_program() -> bytes:
    """The compiled filter (``struct sock_filter`` entries) for this machine's architecture."""
    arch, refused, clone, clone3, foreign = _ARCHES[platform.machine()]
    program: list[tuple[int, int, int, int]] = []

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> None:
        program.append((code, jt, jf, k))

    deny = _ERRNO | errno.EPERM
    op(_LD_W_ABS, 4)                       # seccomp_data.arch
    op(_JEQ, arch, 1, 0)
    op(_RET, deny)
    op(_LD_W_ABS, 0)                       # seccomp_data.nr
    if foreign is not None:
        op(_JGE, foreign, 0, 1)
        op(_RET, deny)
    for number in sorted(refused):
        op(_JEQ, number, 0, 1)
        op(_RET, deny)
    op(_JEQ, clone3, 0, 1)
    op(_RET, _ERRNO | errno.ENOSYS)
    op(_JEQ, clone, 0, 3)
    op(_LD_W_ABS, 16)                      # low 32 bits of args[0]: the clone flags
    op(_JSET, _CLONE_THREAD, 1, 0)
    op(_RET, deny)
    op(_RET, _ALLOW)
    return b"".join(struct.pack("=HBBI", *entry) for entry in program)
