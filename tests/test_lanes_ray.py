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
import time
from pathlib import Path

import pytest

from tests.repos import expd, git, results, start, wait_finished
from tests.test_lanes_run import AGENT_DISTINCT, MEASURE_FILES, lanes_repo, rid

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
from tests.test_ray_parts import FAST_FAILURE, LOOPBACK, _free_port, _ray_start  # noqa: E402


def _cluster(short: Path, groups: list[int]) -> str:
    port = _free_port()
    groups.append(
        _ray_start(
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--temp-dir={short}",
            '--resources={"agent": 1, "bench": 1}',
        )
    )
    address = f"{LOOPBACK}:{port}"
    groups.append(_ray_start(f"--address={address}", '--resources={"agent": 1}'))
    return address


def test_two_lanes_run_on_a_ray_cluster(tmp_path: Path) -> None:
    short = Path(tempfile.mkdtemp(prefix="xw"))
    groups: list[int] = []
    try:
        address = _cluster(short, groups)
        repo = lanes_repo(
            tmp_path / "r",
            count=2,
            max_experiments=4,
            agent_sh=AGENT_DISTINCT,
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
        env = {**os.environ, **FAST_FAILURE, "EXPD_RAY_NODE_IP": LOOPBACK, "NAP": "1"}
        paths = start(repo, env=env)
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
    finally:
        for group in reversed(groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(short, ignore_errors=True)
        time.sleep(0)
