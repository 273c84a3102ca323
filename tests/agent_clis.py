"""Real agent CLIs for the `realcli` tests, installed on demand outside the repository.

Each pinned package goes into its own npm prefix under `$EXPD_AGENT_CACHE` (default
`~/.cache/expd-agent-clis`), e.g. `claude-code-2.1.330/node_modules/.bin/claude`, so bumping one pin
never disturbs another. Installs happen once, under a file lock (parallel test processes wait for
the first); without npm, or when the install fails, `cli_path` returns None and the tests skip.

The CLIs run confined, as the daemon runs them: `sandbox_around` is the sandbox the daemon would
use on this machine (bwrap, else Landlock, else none; or the backend named) around a test's tree,
and `confined` turns an argv and its environment into the confined ones.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.ops.sandbox import Confinement, Sandbox, SandboxUnavailable, make, resolve


@dataclass(frozen=True)
class Package:
    npm: str
    version: str
    """The exact version the tests were written against (bump it only after re-running them)."""
    binary: str


PACKAGES: dict[str, Package] = {
    "claude": Package("@anthropic-ai/claude-code", "2.1.330", "claude"),
    "opencode": Package("opencode-ai", "1.18.33", "opencode"),
    "codex": Package("@openai/codex", "0.169.0", "codex"),
}
INSTALL_TIMEOUT_S = 600


def cache_dir() -> Path:
    root = os.environ.get("EXPD_AGENT_CACHE") or str(Path.home() / ".cache" / "expd-agent-clis")
    return Path(root).expanduser()


def _prefix(package: Package) -> Path:
    return cache_dir() / f"{package.npm.rsplit('/', 1)[-1]}-{package.version}"


def _works(binary: Path) -> bool:
    if not os.access(binary, os.X_OK):
        return False
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def cli_path(name: str) -> Path | None:
    """The pinned CLI `name` ("claude", …), installing it first if needed; None if unavailable."""
    package = PACKAGES[name]
    prefix = _prefix(package)
    binary = prefix / "node_modules" / ".bin" / package.binary
    if binary.exists() and _works(binary):
        return binary
    npm = shutil.which("npm")
    if npm is None:
        return None
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (binary.exists() and _works(binary)):
            with open(prefix / "install.log", "w") as log:
                try:
                    subprocess.run(
                        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                         f"{package.npm}@{package.version}"],
                        stdout=log, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S,
                        check=False,
                    )  # fmt: skip
                except (OSError, subprocess.TimeoutExpired):
                    return None
    return binary if binary.exists() and _works(binary) else None


def require_cli(name: str) -> Path:
    """The CLI for a `realcli` test, or skip the test saying why."""
    path = cli_path(name)
    if path is None:
        package = PACKAGES[name]
        pytest.skip(
            f"{package.npm}@{package.version} is not installed in {cache_dir()} and could not be "
            "installed (needs npm and the registry; see install.log there)"
        )
    return path


def backend() -> str:
    """The backend `[agent] sandbox = "auto"` picks on this machine (what daemon runs use)."""
    return resolve("auto").backend


def sandbox_around(tree: Path, *hidden: Path, mode: str = "auto") -> Sandbox:
    """The sandbox `[agent] sandbox = mode` gives an agent here, writing only `tree` (a backend
    this machine lacks skips the test)."""
    try:
        choice = resolve(mode)
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    return make(choice, Confinement(tree=tree, hidden=hidden))


@contextmanager
def confined(
    sandbox: Sandbox, argv: Sequence[str], env: Mapping[str, str], cwd: Path
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """(argv, env) to run `argv` in `sandbox`, with a private temporary directory while open."""
    tmp = Path(tempfile.mkdtemp(prefix="expd-agent-tmp-"))
    try:
        yield sandbox.wrap(argv, cwd=cwd, tmp=tmp), sandbox.environment(env, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    # `python -m tests.agent_clis`: install every pinned CLI ahead of the tests (CI does this, so
    # a slow download never counts against a test's timeout).
    for name, package in PACKAGES.items():
        found = cli_path(name)
        print(f"{package.npm}@{package.version}: {found or 'unavailable (the realcli tests skip)'}")
