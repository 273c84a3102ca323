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
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import codec
from shared.paths import RunPaths
from shared.schema import DaemonInfo
from tests.repos import (
    expd,
    git,
    processes_in,
    results,
    start,
    wait_dead,
    wait_finished,
    wait_for,
)
from tests.test_lanes_run import AGENT_DISTINCT, MEASURE_FILES, events, lanes_repo, rid


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
from tests.ray_cluster import (  # noqa: E402
    FAST_FAILURE,
    LOOPBACK,
    free_port,
    local_cluster,
    ray_start,
)


def _ray_repo(
    root: Path,
    address: str | None,
    agent_sh: str = AGENT_DISTINCT,
    measure_sh: str = MEASURE_FILES,
    resources: str = "agent_resources = {num_cpus = 0, agent = 1}\n"
    "measure_resources = {num_cpus = 0, bench = 1}\n",
) -> Path:
    """A 2-lane, 4-experiment program on Ray at `address` (None: a local instance of its own)."""
    repo = lanes_repo(
        root,
        count=2,
        max_experiments=4,
        agent_sh=agent_sh,
        extra=(
            'executor = "ray"\n'
            + (f'address = "{address}"\n' if address is not None else "")
            + resources
            + '[measure]\ncommand = "bash m.sh"\nsandbox = "none"\n'
        ),
    )
    (repo / "m.sh").write_text(measure_sh)
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


@pytest.mark.parametrize("client", [False, True], ids=["gcs-address", "ray-client"])
def test_two_lanes_run_on_a_ray_cluster(tmp_path: Path, client: bool) -> None:
    port = free_port()  # the head's Ray Client server: `ray://` addresses
    with local_cluster({"agent": 1, "bench": 1}, {"agent": 1}, client_port=port) as (address, _):
        repo = _ray_repo(tmp_path / "r", f"ray://{LOOPBACK}:{port}" if client else address)
        paths = start(repo, env=ENV)
        final = wait_finished(paths, timeout=150)  # a Ray Client join failing takes 30 s
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


@contextlib.contextmanager
def two_turns_running(root: Path, nap: str) -> Iterator[tuple[Path, RunPaths, list[int], Path]]:
    """A two-lane run on a head and a worker whose agents nap `nap` (a shell expression) before
    their change, once both turns really run, one on each node: (repo, run, the nodes' process
    groups, the workers' temporary directory)."""
    agent = AGENT_DISTINCT.replace("sleep ${NAP:-0.3}", f"sleep {nap}")
    work = Path(tempfile.mkdtemp(prefix="xt"))
    try:
        cluster = local_cluster({"agent": 1, "bench": 1}, {"agent": 1}, {"TMPDIR": str(work)})
        with cluster as (address, groups):
            repo = _ray_repo(root / "r", address, agent)
            paths = start(repo, env=ENV)
            wait_for(lambda: turns_running(work) >= 2, timeout=60, what="both agents")
            yield repo, paths, groups, work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_worker_killed_mid_turn_is_an_interrupted_crash(tmp_path: Path) -> None:
    # The first two turns nap long enough to be caught; the head alone runs the rest.
    with two_turns_running(tmp_path, "$(( EXPD_EXPERIMENT <= 2 ? 8 : 0 ))") as (
        _,
        paths,
        groups,
        _,
    ):
        os.killpg(groups.pop(), signal.SIGKILL)  # the worker node, with one of the turns
        final = wait_finished(paths, timeout=90)
        got = results(paths)
        assert sorted(r.experiment for r in got) == [0, 1, 2, 3, 4], final.message
        lost = [r for r in got if r.reason == "interrupted: worker lost"]
        assert len(lost) == 1 and lost[0].status == "crash", [(r.status, r.reason) for r in got]
        assert final.termination_reason == "max_experiments", final.message


def test_abort_cancels_the_ray_turns(tmp_path: Path) -> None:
    with two_turns_running(tmp_path, "15") as (repo, paths, _, work):
        assert expd("abort", rid(paths), cwd=repo).returncode == 0
        final = wait_finished(paths, timeout=12)
        assert final.termination_reason == "aborted", final.message
        got = results(paths)
        assert sorted((r.experiment, r.status, r.reason) for r in got[1:]) == [
            (1, "crash", "aborted by request"),
            (2, "crash", "aborted by request"),
        ]
        wait_for(lambda: not processes_in(work), timeout=15, what="the agents ended")


def test_kill_9_of_the_daemon_ends_its_ray_turns_and_resume_finishes(tmp_path: Path) -> None:
    # The first two turns nap long; the daemon (the driver that owns them) is killed meanwhile.
    nap = "$(( EXPD_EXPERIMENT <= 2 ? 60 : 0 ))"
    with two_turns_running(tmp_path, nap) as (repo, paths, _, work):
        os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
        wait_dead(paths)
        # Ray ends the tasks of a driver that died: nothing of the old turns runs on.
        wait_for(lambda: not processes_in(work), timeout=60, what="the orphaned turns ended")
        proc = expd("resume", rid(paths), cwd=repo, env=ENV)
        assert proc.returncode == 0, proc.stderr
        final = wait_finished(paths, timeout=90)
        got = results(paths)
        assert sorted(r.experiment for r in got) == [0, 1, 2, 3, 4], final.message
        cut = [(r.experiment, r.status) for r in got if r.reason.startswith("interrupted")]
        assert sorted(cut) == [(1, "crash"), (2, "crash")], [(r.status, r.reason) for r in got]
        assert all(r.status == "keep" for r in got if r.experiment > 2)
        assert final.termination_reason == "max_experiments", final.message


def test_a_worker_lost_mid_measurement_is_an_interrupted_crash(tmp_path: Path) -> None:
    # The first candidate's measurement marks that it started, then naps; the worker node that
    # runs it (the only one with `bench`) is killed, and a replacement joins for the rest.
    mark = tmp_path / "measuring"
    measure = MEASURE_FILES.replace(
        "${MEASURE_EXTRA:-true}",
        f'if [ "$n" -gt 0 ] && mkdir "{mark}" 2>/dev/null; then echo $$ > "{mark}/pid"; '
        "sleep 30; fi",
    )
    with local_cluster({"agent": 2}, {"bench": 1}) as (address, groups):
        repo = _ray_repo(tmp_path / "r", address, measure_sh=measure)
        paths = start(repo, env=ENV)
        pid = int(wait_for(lambda: (mark / "pid").read_text().strip(), 60, "the measurement"))
        try:
            os.killpg(groups.pop(), signal.SIGKILL)  # the worker node, mid-measurement
            groups.append(ray_start(f"--address={address}", '--resources={"bench": 1}'))
            final = wait_finished(paths, timeout=90)
        finally:
            # Run unconfined, the nap outlived its node: end it by its own group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        got = results(paths)
        assert sorted(r.experiment for r in got) == [0, 1, 2, 3, 4], final.message
        lost = [r for r in got if r.status != "keep" and r.experiment > 0]
        assert [(r.status, r.reason) for r in lost] == [("crash", "interrupted: worker lost")]
        assert lost[0].measure_s > 0 and lost[0].lane in (0, 1)
        assert final.termination_reason == "max_experiments", final.message
        seen = [e for e in events(paths) if e.kind == "interrupted"]
        assert [(e.experiment, e.data["stage"]) for e in seen] == [
            (lost[0].experiment, "measuring")
        ]


def ray_processes(temp: Path) -> list[int]:
    """Live processes of the Ray instance whose temporary directory is `temp` (its GCS, raylet and
    workers name their session directory there on their command lines)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if str(temp).encode() in cmdline and state != "Z":
                    out.append(int(entry.name))
    return out


def test_the_daemon_starts_and_ends_a_local_instance(tmp_path: Path) -> None:
    temp = Path(tempfile.mkdtemp(prefix="xl"))  # Ray's temporary directory: socket paths are short
    try:
        repo = _ray_repo(
            tmp_path / "r",
            None,  # no address: an instance of the run's own
            resources="agent_resources = {num_cpus = 0}\nmeasure_resources = {num_cpus = 0}\n",
        )
        paths = start(repo, env={**ENV, "RAY_TMPDIR": str(temp)})
        final = wait_finished(paths, timeout=120)
        assert final.termination_reason == "max_experiments", final.message
        got = results(paths)
        assert sorted(r.experiment for r in got) == [0, 1, 2, 3, 4]
        assert all(r.status == "keep" for r in got[1:]), [(r.status, r.reason) for r in got]
        status = json.loads(expd("status", rid(paths), "--json", cwd=repo).stdout)
        assert all(len(lane["node"]) > 20 for lane in status["lanes"])  # Ray node ids
        assert list(temp.glob("ray/session_*")), "the instance did not run in its directory"
        wait_for(lambda: not ray_processes(temp), timeout=30, what="the instance's end")
    finally:
        for pid in ray_processes(temp):  # only when the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.parametrize("scheme", ["ray://", ""])
def test_an_unreachable_address_ends_the_run_with_one_line(tmp_path: Path, scheme: str) -> None:
    address = f"{scheme}{LOOPBACK}:{free_port()}"  # nothing listens there
    repo = _ray_repo(tmp_path / "r", address)
    paths = start(repo, env=ENV)
    final = wait_finished(paths, timeout=30)
    assert final.termination_reason == "error" and final.phase == "crashed"
    assert final.message == f"[lanes] address: cannot reach Ray at {address}: Connection refused"
    assert results(paths) == []
    status = expd("status", rid(paths), cwd=repo).stdout
    assert "cannot reach Ray" in status, status
