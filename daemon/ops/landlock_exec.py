"""Exec a command under a Landlock ruleset: it may write only beneath the given paths.

Landlock rules bind the thread that applies them and everything it then starts, so they are
applied here, in a helper that then execs the agent, never in the daemon. expd runs it as
`python -I -S /path/to/landlock_exec.py --write PATH… -- argv…` (`python -m
daemon.ops.landlock_exec` works too): standard library only, so neither the agent's tree (the
working directory) nor any site or user package is on its import path.

What is handled: every kind of write (create, remove, rename across directories, truncate, write)
outside the `--write` paths is refused; reading and executing are left alone (Landlock cannot
hide a subpath under a readable parent). Where the kernel has them (ABI 6), signals to processes
outside the sandbox and connections to abstract Unix sockets outside it are refused too. Reading
`/proc/<pid>/environ` of a process outside the sandbox is refused by Landlock itself (ABI 1).
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
"""The same numbers on every architecture (syscalls added after 424 share one table)."""
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

WRITE_FILE = 1 << 1
REMOVE_DIR, REMOVE_FILE = 1 << 4, 1 << 5
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK = 1 << 6, 1 << 7, 1 << 8, 1 << 9
MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 10, 1 << 11, 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
WRITES_V1 = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK
WRITES_V1 |= MAKE_FIFO | MAKE_BLOCK | MAKE_SYM
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
EXIT_SETUP_FAILED = 126


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(version), 0)


def handled_writes(version: int) -> int:
    """The write rights this ABI knows: all of them are refused unless a rule allows them."""
    rights = WRITES_V1
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    return rights


def restrict(writable: list[str]) -> int:
    """Restrict this thread (and what it execs) to writing beneath `writable`; the ABI used."""
    libc = _libc()
    version = abi()
    if version < 1:
        raise OSError("Landlock is not available in this kernel")
    rights = handled_writes(version)
    attr = _RulesetAttr(rights, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0)
    size = 24 if version >= 6 else 16 if version >= 4 else 8
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise _error("landlock_create_ruleset")
    try:
        for path in writable:
            _allow(libc, ruleset, path, rights)
        _drop_capabilities(libc)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _error("prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise _error("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return version


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    """Allow every handled write beneath `path` (a file gets the rights a file can have)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= WRITE_FILE | TRUNCATE
        rule = _PathBeneathAttr(rights, fd)
        if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise _error(f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """Empty the bounding set, so a root agent execs with no capabilities at all.

    Landlock does not refuse reading another process's `/proc/<pid>/environ` on every kernel; the
    daemon makes itself non-dumpable, which stops any reader without CAP_SYS_PTRACE, and this
    takes that capability (and every other) from root. Not root: nothing to drop (EPERM ignored).
    """
    try:
        with open("/proc/sys/kernel/cap_last_cap") as file:
            last = int(file.read())
    except (OSError, ValueError):
        last = 40
    for cap in range(last + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


def _error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def main(argv: list[str]) -> int:
    """`--write PATH` (repeated) `-- COMMAND…`: restrict, then exec the command."""
    if "--" not in argv:
        print("usage: landlock_exec [--write PATH]… -- COMMAND…", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    if not command or len(options) % 2 or any(o != "--write" for o in options[::2]):
        print("usage: landlock_exec [--write PATH]… -- COMMAND…", file=sys.stderr)
        return 2
    try:
        restrict(options[1::2])
    except OSError as exc:
        print(f"expd: cannot apply the Landlock sandbox: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"expd: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 127  # not reached: execvp does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
