"""Lanes on Ray end to end: the real daemon with `[lanes] executor = "ray"` joined to a real
two-node local cluster (a head and a worker on 127.0.0.2), command agents, a committed measurement
script run by the workers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tests.repos import (
    expd,
    git,
    processes_in,
    results,
    start,
    wait_finished,
    wait_for,
)
from tests.test_lanes_run import AGENT_DISTINCT, MEASURE_FILES, lanes_repo, rid


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ('address = "auto"\n', "need executor = 'ray'"),
        ('executor = "ray"\naddress = ""\n', "address must not be empty"),
        ('executor = "ray"\nagent_resources = {GPU = 1}\n', "write num_cpus"),
        ('executor = "ray"\nmeasure_resources = {num_gpus = -1}\n', "non-negative"),
        ('executor = "ray"\n', "needs [measure] command"),
        (
            'executor = "ray"\n[measure]\ncommand = "bash m.sh"\n'
            '[[arms]]\nid = "a"\nkind = "claude"\n[[arms]]\nid = "b"\n',
            "only 'command' agents (arm 'a' is 'claude')",
        ),
    ],
    ids=["address-without-ray", "empty-address", "ray-name", "negative", "no-command", "arm"],
)
def test_ray_settings_are_checked_at_start(tmp_path: Path, extra: str, needle: str) -> None:
    repo = lanes_repo(tmp_path / "r", count=2, extra=extra)
    proc = expd("start", "p", cwd=repo)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr, proc.stderr


ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
from tests.ray_cluster import FAST_FAILURE, LOOPBACK, local_cluster  # noqa: E402


def _ray_repo(root: Path, address: str, agent_sh: str = AGENT_DISTINCT) -> Path:
    repo = lanes_repo(
        root,
        count=2,
        max_experiments=4,
        agent_sh=agent_sh,
        extra=(
            f'executor = "ray"\naddress = "{address}"\n'
            "agent_resources = {num_cpus = 0, agent = 1}\n"
            "measure_resources = {num_cpus = 0, bench = 1}\n"
            '[measure]\ncommand = "bash m.sh"\nsandbox = "none"\n'
        ),
    )
    (repo / "m.sh").write_text(MEASURE_FILES)
    git(repo, "add", "m.sh")
    git(repo, "commit", "-qm", "measure")
    return repo


def turns_running(work: Path) -> int:
    """Agent turns with a live process on the workers (each works in a directory of its own under
    the nodes' temporary directory `work`)."""
    dirs = set()
    for pid in processes_in(work):
        with contextlib.suppress(OSError):
            dirs.add(Path(os.readlink(f"/proc/{pid}/cwd")).relative_to(work.resolve()).parts[0])
    return len(dirs)


ENV = {**os.environ, **FAST_FAILURE, "EXPD_RAY_NODE_IP": LOOPBACK}


def test_two_lanes_run_on_a_ray_cluster(tmp_path: Path) -> None:
    with local_cluster({"agent": 1, "bench": 1}, {"agent": 1}) as (address, _):
        repo = _ray_repo(tmp_path / "r", address)
        paths = start(repo, env=ENV)
        final = wait_finished(paths)
        assert final.termination_reason == "max_experiments", final.message
        got = results(paths)
        assert sorted(r.experiment for r in got) == [0, 1, 2, 3, 4]
        assert all(r.status == "keep" for r in got[1:]), [(r.status, r.reason) for r in got]
        assert {r.lane for r in got[1:]} == {0, 1}
        log = (paths.dir / "agent" / "0001.log").read_text()
        assert "file 1" in log or "EXPD-DESCRIPTION" in log, log
        status = json.loads(expd("status", rid(paths), "--json", cwd=repo).stdout)
        nodes = {lane["node"] for lane in status["lanes"]}
        assert all(len(n) > 20 for n in nodes), nodes  # Ray node ids, not this host's name
        files = git(repo, "ls-tree", "--name-only", final.incumbent_commit).split()
        assert {f"d{n}.py" for n in range(1, 5)} <= set(files)


def test_a_worker_killed_mid_turn_is_an_interrupted_crash(tmp_path: Path) -> None:
    # The first two turns nap long enough to be caught; the head alone runs the rest.
    agent = AGENT_DISTINCT.replace("sleep ${NAP:-0.3}", "sleep $(( EXPD_EXPERIMENT <= 2 ? 8 : 0 ))")
    work = Path(tempfile.mkdtemp(prefix="xk"))  # the workers' temporary directories
    try:
        cluster = local_cluster({"agent": 1, "bench": 1}, {"agent": 1}, {"TMPDIR": str(work)})
        with cluster as (address, groups):
            repo = _ray_repo(tmp_path / "r", address, agent)
            paths = start(repo, env=ENV)
            # Both agents really running: one on each node.
            wait_for(lambda: turns_running(work) >= 2, timeout=60, what="both agents")
            os.killpg(groups.pop(), signal.SIGKILL)  # the worker node, with one of the turns
            final = wait_finished(paths, timeout=90)
            got = results(paths)
            assert sorted(r.experiment for r in got) == [0, 1, 2, 3, 4], final.message
            lost = [r for r in got if r.reason == "interrupted: worker lost"]
            assert len(lost) == 1 and lost[0].status == "crash", [(r.status, r.reason) for r in got]
            assert final.termination_reason == "max_experiments", final.message
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_abort_cancels_the_ray_turns(tmp_path: Path) -> None:
    agent = AGENT_DISTINCT.replace("sleep ${NAP:-0.3}", "sleep 15")
    work = Path(tempfile.mkdtemp(prefix="xa"))  # the workers' temporary directories
    try:
        cluster = local_cluster({"agent": 1, "bench": 1}, {"agent": 1}, {"TMPDIR": str(work)})
        with cluster as (address, _):
            repo = _ray_repo(tmp_path / "r", address, agent)
            paths = start(repo, env=ENV)
            wait_for(lambda: turns_running(work) >= 2, timeout=60, what="both agents")
            assert expd("abort", rid(paths), cwd=repo).returncode == 0
            final = wait_finished(paths, timeout=12)
            assert final.termination_reason == "aborted", final.message
            got = results(paths)
            assert sorted((r.experiment, r.status, r.reason) for r in got[1:]) == [
                (1, "crash", "aborted by request"),
                (2, "crash", "aborted by request"),
            ]
            wait_for(lambda: not processes_in(work), timeout=15, what="the agents ended")
    finally:
        shutil.rmtree(work, ignore_errors=True)
