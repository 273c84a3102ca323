"""Confining the agent: what it may write, what it must not see, and the backend that enforces it.

A `Confinement` says it in paths; a `Sandbox` is a backend plus a confinement, and turns the
agent's argv into a confined one (children.run is the only caller that starts processes with it).

- `bwrap` (bubblewrap, by absolute path): a read-only view of `/`, a tmpfs over every hidden
  directory with the writable ones bound back in, a private `/tmp`, its own PID and IPC namespaces
  (the daemon and every other process are invisible, and everything inside ends with the agent's
  main process), `--die-with-parent`, `--new-session`. Network is kept.
- `landlock` (the kernel's, through daemon/ops/landlock_exec.py): writes only beneath the writable
  paths, no signals to or abstract sockets of processes outside (ABI 6), no capabilities. It hides
  nothing: Landlock cannot take a subpath away from a readable parent.
- `none`: the agent runs as the user, and everything says so.

A measurement (the agent's committed code, built and run by expd) goes through the same backends
with its own confinement (daemon/ops/confine.py, `measure_confinement`); it keeps the host's
device nodes (`host_dev`) so a benchmark still reaches its GPUs.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from daemon.ops import landlock_exec
from shared.schema import SANDBOXES as MODES

BWRAP_PATHS = ("/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap")
BWRAP_BASE = (
    "--new-session",
    "--die-with-parent",
    "--unshare-pid",
    "--unshare-ipc",
    "--cap-drop",
    "ALL",
)
"""`--cap-drop ALL`: as root, bwrap keeps every capability, and an agent could unmount what hides."""
BWRAP_VIEW = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc")
BWRAP_HOST_DEV = ("--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--proc", "/proc")
"""A measurement's view: `--dev` makes a fresh /dev with only null, zero, tty, … and no GPU nodes
(`/dev/nvidia*`, `/dev/dri`, `/dev/kfd`); the host's /dev is bound in instead."""
GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/dri", "/dev/kfd")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts", "/dev/shm")
"""What a landlocked agent may still write outside its paths: the usual devices."""
PROBE_TIMEOUT_S = 10.0


class SandboxUnavailable(Exception):
    """The sandbox asked for cannot run on this machine (the message says why, on one line)."""


@dataclass(frozen=True)
class Confinement:
    """The paths of one agent: its tree, what else it may write, what it must not see.

    `readonly` re-exposes paths inside hidden ones, read-only (the user's git objects a clone
    borrows). Landlock cannot hide, so there `hidden` and `readonly` stay readable anyway.
    """

    tree: Path
    writable: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    readonly: tuple[Path, ...] = ()
    host_dev: bool = False
    """The host's device nodes, GPUs included (measurements); else the usual few (the agent)."""

    def plus(self, writable: Iterable[Path]) -> Confinement:
        return replace(self, writable=(*self.writable, *writable))


@dataclass(frozen=True)
class Probe:
    """Whether a backend works here; `argv` is what runs it (bwrap and its namespace flags)."""

    name: str
    ok: bool
    detail: str
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sandbox:
    """A backend and a confinement; `none` (or no confinement) runs the agent unconfined."""

    backend: str = "none"
    confinement: Confinement | None = None
    launcher: tuple[str, ...] = field(default=(), repr=False)

    @property
    def confined(self) -> bool:
        return self.backend != "none" and self.confinement is not None

    def allowing(self, *paths: Path) -> Sandbox:
        """The same sandbox with more writable paths (a kind's private state folders)."""
        if self.confinement is None:
            return self
        return replace(self, confinement=self.confinement.plus(paths))

    def wrap(self, argv: Sequence[str], *, cwd: Path, tmp: Path) -> list[str]:
        """`argv`, run confined, with `tmp` as its private temporary directory."""
        c = self.confinement
        if c is None or self.backend == "none":
            return list(argv)
        if self.backend == "landlock":
            paths = [c.tree, tmp, *c.writable, *DEVICES, *(_gpus() if c.host_dev else ())]
            rules = [a for p in paths for a in ("--write", str(p))]
            return [*self.launcher, *rules, "--", *argv]
        view = BWRAP_HOST_DEV if c.host_dev else BWRAP_VIEW
        return [*self.launcher, *view, *_mounts(c, tmp), "--chdir", str(cwd), "--", *argv]

    def environment(self, env: Mapping[str, str], tmp: Path) -> dict[str, str]:
        """`env` with the private temporary directory (it is `/tmp` itself under bwrap)."""
        if not self.confined:
            return dict(env)
        inside = "/tmp" if self.backend == "bwrap" else str(tmp)
        return {**env, "TMPDIR": inside, "TMP": inside, "TEMP": inside}


UNCONFINED = Sandbox()


def _gpus() -> list[str]:
    """The GPU device nodes present here (written to by CUDA, ROCm and DRM clients)."""
    nodes = [p for p in GPU_DEVICES if os.path.exists(p)]
    nodes += [str(p) for p in sorted(Path("/dev").glob("nvidia[0-9]*"))]
    return nodes


def _depth(path: Path) -> int:
    return len(path.parts)


def _mounts(c: Confinement, tmp: Path) -> list[str]:
    """bwrap's mount operations, shallow first so deeper binds land on top of hidden tmpfs.

    What exists is looked at on every call (a hidden folder created since is still hidden); the
    plan built from it is cached, as it is the same for every process of a run."""
    paths = {Path(p) for p in (c.tree, *c.writable, *c.readonly, *c.hidden)}
    found = frozenset((p, p.is_dir()) for p in paths if p.exists())
    return ["--bind", str(tmp), "/tmp", *_plan(c, found)]


@functools.lru_cache(maxsize=64)
def _plan(c: Confinement, found: frozenset[tuple[Path, bool]]) -> tuple[str, ...]:
    """The mounts for `c` given which of its paths exist (and which of those are folders)."""
    is_dir = dict(found)
    binds = {Path(p): "--bind" for p in (c.tree, *c.writable)}
    for path in c.readonly:
        binds.setdefault(Path(path), "--ro-bind")
    hidden = [Path(h) for h in c.hidden if Path(h) not in binds and Path(h) in is_dir]
    ops: list[tuple[Path, str]] = [(p, f) for p, f in binds.items() if p in is_dir]
    hidden = [h for h in hidden if not _covered(h, hidden, binds)]
    # A folder is covered by an empty tmpfs; a file (a daemon's socket) by /dev/null.
    ops += [(h, "--tmpfs" if is_dir[h] else "--null") for h in hidden]
    out: list[str] = []
    for path, flag in sorted(ops, key=lambda item: _depth(item[0])):
        if flag == "--tmpfs":
            out += [flag, str(path)]
        elif flag == "--null":
            out += ["--ro-bind", "/dev/null", str(path)]
        else:
            out += [flag, str(path), str(path)]
    for path, flag in ops:
        if flag == "--tmpfs":
            out += ["--remount-ro", str(path)]  # after the binds inside it exist
    return tuple(out)


def _covered(path: Path, hidden: list[Path], binds: Mapping[Path, str]) -> bool:
    """A hidden path inside another hidden one, with no bind in between, is hidden already."""
    for outer in hidden:
        if outer != path and path.is_relative_to(outer):
            between = [b for b in binds if path.is_relative_to(b) and b.is_relative_to(outer)]
            if not between:
                return True
    return False


# --------------------------------------------------------------------------- which backend


def _bwrap_path() -> str | None:
    """bwrap by absolute path: the system's, else the first on an absolute entry of our PATH."""
    for candidate in BWRAP_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    search = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)
    )
    return shutil.which("bwrap", path=search)


def _try(argv: list[str]) -> str | None:
    """None when `argv` ran and exited 0, else why not (one line)."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


@functools.cache
def probe_bwrap() -> Probe:
    """Run bwrap once: with its own user namespace if it may, else without (as root). The
    launcher stops before the view (`BWRAP_VIEW` or `BWRAP_HOST_DEV`), which `wrap` adds."""
    if not sys.platform.startswith("linux"):
        return Probe("bwrap", False, "Linux only")
    path = _bwrap_path()
    if path is None:
        return Probe("bwrap", False, "bwrap is not installed (the bubblewrap package)")
    failure = ""
    with tempfile.TemporaryDirectory(prefix="expd-probe-") as tmp:
        for userns in (("--unshare-user",), ()):
            launcher = (path, *BWRAP_BASE, *userns)
            why = _try(
                [
                    *launcher,
                    *BWRAP_VIEW,
                    "--bind",
                    tmp,
                    "/tmp",
                    "--tmpfs",
                    "/mnt",
                    "--",
                    "/bin/true",
                ]
            )
            if why is None:
                how = "own user, PID and IPC namespaces" if userns else "own PID and IPC namespaces"
                return Probe("bwrap", True, f"{path} ({how})", launcher)
            failure = failure or why
    return Probe("bwrap", False, f"{path} does not work here: {failure}")


@functools.cache
def probe_landlock() -> Probe:
    """Check the kernel's ABI, then apply a ruleset once in the helper."""
    version = landlock_exec.abi()
    if version < 1:
        return Probe("landlock", False, "the kernel has no Landlock (Linux 5.13+, enabled)")
    launcher = (sys.executable, "-I", "-S", str(Path(landlock_exec.__file__).resolve()))
    with tempfile.TemporaryDirectory(prefix="expd-probe-") as tmp:
        why = _try([*launcher, "--write", tmp, "--", "/bin/true"])
    if why is not None:
        return Probe("landlock", False, f"Landlock ABI {version} refused a ruleset: {why}")
    scope = "" if version >= 6 else "; signals to the daemon are not refused before ABI 6"
    return Probe(
        "landlock",
        True,
        f"kernel Landlock ABI {version} (writes only; hides nothing{scope})",
        launcher,
    )


def probe(name: str) -> Probe:
    if name == "bwrap":
        return probe_bwrap()
    if name == "landlock":
        return probe_landlock()
    return Probe("none", True, "no confinement")


@dataclass(frozen=True)
class Choice:
    """The backend `[agent] sandbox` resolved to, and why (a fallback is said, never silent)."""

    backend: str
    detail: str
    launcher: tuple[str, ...] = ()


def resolve(mode: str, key: str = "[agent] sandbox") -> Choice:
    """`auto`: bwrap if it works, else landlock, else none; a named one must work. `key` names
    the setting in messages (`[measure] sandbox` for measurements)."""
    if mode not in MODES:
        raise SandboxUnavailable(f"{key} = {mode!r}: use one of {', '.join(MODES)}")
    if mode == "none":
        return Choice("none", f'turned off by {key} = "none"')
    if mode != "auto":
        found = probe(mode)
        if not found.ok:
            raise SandboxUnavailable(f"{key} = {mode!r} is not available: {found.detail}")
        return Choice(mode, found.detail, found.argv)
    bwrap = probe_bwrap()
    if bwrap.ok:
        return Choice("bwrap", bwrap.detail, bwrap.argv)
    landlock = probe_landlock()
    if landlock.ok:
        return Choice("landlock", f"{landlock.detail}; bwrap: {bwrap.detail}", landlock.argv)
    return Choice(
        "none", f"no sandbox available (bwrap: {bwrap.detail}; landlock: {landlock.detail})"
    )


def make(choice: Choice, confinement: Confinement) -> Sandbox:
    return Sandbox(choice.backend, confinement, choice.launcher)
