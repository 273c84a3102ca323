"""The Ray executor's parts: git bundles there and back (no Ray needed), then agent turns and
measurements as Ray tasks on a real local cluster (a head and a worker process on 127.0.0.1),
including a worker killed mid-turn."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from daemon.ops.git.bundles import (
    BundleError,
    apply_candidate,
    candidate_bundle,
    fetch_candidate,
    make_bundle,
    unpack,
)
from daemon.ops.git.store import open_user_repo
from tests.ray_cluster import LOOPBACK
from tests.ray_cluster import free_port as _free_port
from tests.ray_cluster import ray_start as _ray_start
from tests.repos import GIT_ENV, git


def _repo(root: Path) -> tuple[Path, str]:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "f.py").write_text("x = 1\n")
    (root / "measure.sh").write_text(
        'x=$(sed -E "s/x = ([0-9-]+)/\\1/" f.py)\necho "{\\"score\\": $x}"\n'
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    (root / "g.txt").write_text("two\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "two")
    return root, git(root, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


def _agent_change(tree_path: Path) -> None:
    (tree_path / "f.py").write_text("x = 2\n")
    (tree_path / "new.txt").write_text("new\n")
    os.remove(tree_path / "g.txt")


def test_bundle_round_trip(tmp_path: Path) -> None:
    user, head = _repo(tmp_path / "user")
    refs_before = git(user, "for-each-ref")
    bundle = make_bundle(user, head)
    assert git(user, "for-each-ref") == refs_before  # nothing written into the user's repository

    tree = unpack(bundle, tmp_path / "worker", head)
    assert (tree.path / "f.py").read_text() == "x = 1\n"
    assert (tree.path / "g.txt").is_file()
    assert git(tree.path, "rev-parse", "HEAD") == head  # the tree's .git is usable by the agent

    _agent_change(tree.path)
    staged = tree.stage_sync(head, lambda: "x to 2")
    assert staged is not None and not isinstance(staged, str)
    tree.publish_sync(staged, "refs/expd/candidate")
    back = candidate_bundle(tree.repo, head, staged.commit)
    assert len(back) < len(bundle)  # only the new objects travel back

    candidate = fetch_candidate(user, back, head, tmp_path / "scratch")
    assert candidate.commit == staged.commit and candidate.message == "x to 2"
    assert {c.path: c.status for c in candidate.changes} == {
        "f.py": "modified",
        "g.txt": "deleted",
        "new.txt": "added",
    }
    with pytest.raises(KeyError):
        open_user_repo(user)[candidate.commit]  # fetched, not yet published

    commit = apply_candidate(user, back, head, "refs/expd/lane/1")
    assert commit == staged.commit
    assert git(user, "rev-parse", "refs/expd/lane/1") == commit
    assert git(user, "show", f"{commit}:f.py") == "x = 2"
    assert git(user, "rev-parse", f"{commit}^") == head
    assert git(user, "status", "--porcelain") == ""


def test_a_candidate_not_on_its_base_is_refused(tmp_path: Path) -> None:
    user, head = _repo(tmp_path / "user")
    first = git(user, "rev-parse", "HEAD^")
    tree = unpack(make_bundle(user, head), tmp_path / "worker", head)
    _agent_change(tree.path)
    staged = tree.stage_sync(head, lambda: "change")
    assert staged is not None and not isinstance(staged, str)
    tree.publish_sync(staged, "refs/expd/candidate")
    # Two commits on the older base: their bundle needs `first` only, but the parent is not it.
    back = candidate_bundle(tree.repo, first, staged.commit)
    with pytest.raises(BundleError, match="not one commit on"):
        apply_candidate(user, back, first, "refs/expd/lane/1")
    # A bundle of something else entirely is no candidate.
    with pytest.raises(BundleError):
        apply_candidate(user, b"not a bundle", head, "refs/expd/lane/1")
    with pytest.raises(BundleError, match="holds"):
        unpack(make_bundle(user, head), tmp_path / "worker2", first)
    assert "refs/expd/lane/1" not in git(user, "for-each-ref")


# --------------------------------------------------------------------------- on a real cluster

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
from daemon.ray.cluster import WorkerLost, connect, disconnect, options, result, wait  # noqa: E402
from daemon.ray.tasks import new_sink, submit_measure, submit_turn  # noqa: E402

# What Ray Client raises when the head's proxy could not start a server for this client: the
# server's traceback after one line of its own (ray/util/client/worker.py, _server_init).
PROXY_FAILED = (
    "Initialization failure from server:\nTraceback (most recent call last):\n"
    '  File "ray/util/client/server/proxier.py", line 780, in Datapath\n'
    "    raise RuntimeError(\n"
    "RuntimeError: Proxy failed to Connect to backend! Check `ray_client_server.err`\n"
)


@pytest.mark.parametrize(("fails", "calls"), [(1, 2), (2, 3), (5, 3)])
def test_a_ray_client_join_is_tried_again_after_a_server_failure(
    monkeypatch: pytest.MonkeyPatch, fails: int, calls: int
) -> None:
    import daemon.ray.cluster as cluster

    seen: list[str] = []
    notes: list[str] = []

    def init(address: str, **_: object) -> None:
        seen.append(address)
        if len(seen) <= fails:
            raise ConnectionAbortedError(PROXY_FAILED)

    monkeypatch.setattr(cluster.ray, "init", init)
    monkeypatch.setattr(cluster.time, "sleep", lambda _: None)
    if fails < cluster.CLIENT_ATTEMPTS:
        cluster._join("ray://10.0.0.9:10001", {}, notes.append)
        assert len(notes) == fails and "failed (attempt 1): Initialization failure" in notes[0]
    else:
        with pytest.raises(ConnectionAbortedError) as caught:
            cluster._join("ray://10.0.0.9:10001", {}, notes.append)
        assert cluster._reason(caught.value) == (
            "Initialization failure from server: RuntimeError: Proxy failed to Connect to "
            "backend! Check `ray_client_server.err`"
        )
    assert len(seen) == calls
    seen.clear()
    with pytest.raises(ConnectionAbortedError):  # a GCS address is not Ray Client's
        cluster._join("10.0.0.9:6379", {}, notes.append)
    assert len(seen) == 1


def test_resource_requests_become_task_options() -> None:
    assert options({"num_gpus": 1, "bench_host": 1, "num_cpus": 0.5}) == {
        "num_gpus": 1,
        "num_cpus": 0.5,
        "resources": {"bench_host": 1.0},
    }
    assert options(None) == {}
    with pytest.raises(ValueError, match="non-negative"):
        options({"num_gpus": -1})
    with pytest.raises(ValueError, match="write num_cpus"):
        options({"GPU": 1})


@dataclass
class Nodes:
    address: str
    head: int
    worker: int
    worker_node: str


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Nodes]:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    short = Path(tempfile.mkdtemp(prefix="xr"))  # Unix socket paths must stay short
    groups: list[int] = []
    try:
        port = _free_port()
        groups.append(
            _ray_start(
                "--head",
                f"--port={port}",
                "--include-dashboard=false",
                f"--temp-dir={short}",
                '--resources={"agent_slot": 1}',
            )
        )
        address = f"{LOOPBACK}:{port}"
        groups.append(_ray_start(f"--address={address}", '--resources={"bench": 1}'))
        connect(address, node_ip_address=LOOPBACK)
        deadline = time.monotonic() + 30
        while (bench := [n for n in ray.nodes() if n["Alive"] and "bench" in n["Resources"]]) == []:
            assert time.monotonic() < deadline, "the worker node never joined"
            time.sleep(0.1)
        yield Nodes(address, groups[0], groups[1], bench[0]["NodeID"])
    finally:
        disconnect()
        for group in reversed(groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(short, ignore_errors=True)


AGENT = {
    "kind": "command",
    "sandbox": "none",
    "command": 'echo "read $(wc -c) bytes"; echo "x = 5" > f.py; echo "EXPD-DESCRIPTION: x to 5"',
}


def test_turns_and_measurements_on_a_real_cluster(tmp_path: Path, nodes: Nodes) -> None:
    user, head = _repo(tmp_path / "user")
    bundle = make_bundle(user, head)

    # An agent turn, forced onto the worker by its custom resource; its lines stream back.
    sink = new_sink()
    started = time.monotonic()
    ref = submit_turn(
        bundle, head, AGENT, "improve it", {}, 30.0, resources={"bench": 1}, sink=sink
    )
    turn = result(ref, timeout=60)
    elapsed = time.monotonic() - started
    assert turn.node == nodes.worker_node
    assert turn.error == "" and turn.problem == ""
    assert turn.description == "x to 5"
    lines, dropped = ray.get(sink.take.remote())
    assert ("stdout", "read 10 bytes") in lines and dropped == 0
    assert turn.bundle is not None
    commit = apply_candidate(user, turn.bundle, head, "refs/expd/lane/1")
    assert commit == turn.commit
    assert git(user, "show", f"{commit}:f.py") == "x = 5"
    print(
        f"turn round trip {elapsed:.2f}s, timings {turn.timings}, bundle {len(bundle)} B, "
        f"candidate {len(turn.bundle)} B"
    )

    # A measurement of the candidate (now in the user's repository), awaited as the loop does.
    measured = anyio.run(
        wait,
        submit_measure(
            make_bundle(user, commit),
            commit,
            "score",
            {"command": "bash measure.sh"},
            20.0,
            3,
            {},
            resources={"bench": 1},
        ),
    )
    assert measured.node == nodes.worker_node
    assert [s.metrics for s in measured.samples] == [{"score": 5.0}] * 3
    assert all(s.ok for s in measured.samples)

    # The worker dies mid-turn: WorkerLost, soon.
    marks = tmp_path / "marks"
    slow = {
        **AGENT,
        "command": f"echo $$ > {marks}; echo started; for i in $(seq 100); do sleep 0.1; done",
    }
    sink = new_sink()
    ref = submit_turn(bundle, head, slow, "", {}, 60.0, resources={"bench": 1}, sink=sink)
    deadline = time.monotonic() + 30
    seen: list[tuple[str, str]] = []
    while ("stdout", "started") not in seen:
        assert time.monotonic() < deadline, f"the slow turn never started: {seen}"
        seen += ray.get(sink.take.remote())[0]
        time.sleep(0.05)
    try:
        os.killpg(nodes.worker, signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(WorkerLost, match="worker was lost"):
            result(ref, timeout=30)
        print(f"WorkerLost after {time.monotonic() - killed:.2f}s")
    finally:
        # The agent ran unconfined: its process group outlived the worker. End it by its id.
        with contextlib.suppress(ProcessLookupError, ValueError, OSError):
            os.killpg(int(marks.read_text()), signal.SIGKILL)
