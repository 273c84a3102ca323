"""A real local Ray cluster for tests and benchmarks: nodes started with `ray start` on 127.0.0.2,
each in a session of its own and ended by killing that process group (never `ray stop`, which
ends every Ray process on the machine)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

LOOPBACK = "127.0.0.2"
"""Every node and the driver on this address: Ray replaces 127.0.0.1 (and `localhost`) with the
machine's outward address, and the cluster must talk over loopback only."""
FAST_FAILURE = {
    # A token in ~/.ray (a local `ray.init()` writes one) would turn auth on for one side only.
    "RAY_AUTH_MODE": "disabled",
    # A dead node is noticed in about a second, not the default half minute.
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "300",
    "RAY_health_check_timeout_ms": "300",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def ray_start(*args: str, env: Mapping[str, str] | None = None, cpus: int = 1) -> int:
    """`ray start` in a session of its own; its daemons keep that process group (returned)."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    full = {**os.environ, **FAST_FAILURE, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    common = (
        f"--node-ip-address={LOOPBACK}",
        f"--num-cpus={cpus}",
        "--object-store-memory=80000000",
    )
    proc = subprocess.Popen(
        [ray_cli, "start", *common, *args],
        env=full,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    return proc.pid


@contextlib.contextmanager
def local_cluster(
    head: Mapping[str, float],
    worker: Mapping[str, float],
    env: Mapping[str, str] | None = None,
    client_port: int | None = None,
) -> Iterator[tuple[str, list[int]]]:
    """A head and a worker node with these custom resources: the head's address and the nodes'
    process groups (head first; a test may kill the worker's). The head's Ray Client server (with
    `ray[client]`) listens on `client_port` (default: any free port, so clusters never clash)."""
    short = Path(tempfile.mkdtemp(prefix="xr"))  # Unix socket paths must stay short
    groups: list[int] = []
    try:
        port = free_port()
        groups.append(
            ray_start(
                "--head",
                f"--port={port}",
                f"--ray-client-server-port={client_port or free_port()}",
                "--include-dashboard=false",
                f"--temp-dir={short}",
                f"--resources={json.dumps(dict(head))}",
                env=env,
            )
        )
        address = f"{LOOPBACK}:{port}"
        groups.append(
            ray_start(f"--address={address}", f"--resources={json.dumps(dict(worker))}", env=env)
        )
        yield address, groups
    except BaseException:
        _print_client_server_logs(short)
        raise
    finally:
        for group in reversed(groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(short, ignore_errors=True)


def _print_client_server_logs(temp_dir: Path) -> None:
    """The tails of the head's Ray Client server logs, into the failing test's captured output:
    the one line the daemon reports cannot carry the server's side of a failed join."""
    for log in sorted(temp_dir.glob("session_*/logs/ray_client_server*")):
        with contextlib.suppress(OSError):
            tail = log.read_text(errors="replace").splitlines()[-30:]
            print(f"--- {log.name}", *tail, sep="\n")
