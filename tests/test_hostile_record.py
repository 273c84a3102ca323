"""A hostile agent against the record, the secrets, the output bounds and the benchmark.

Every scenario runs the real daemon on a real repository with a `command` agent (a shell script)
that tries one thing: forge a results line or state.json, write its own control requests, unlink
the daemon's locks, leak a secret, flood its output, change the benchmark, print a metric no float
can hold. Each asserts what holds, and every whole run the five invariants of tests/hostile.py
(the agent prints the daemon's canary key and leaves a detached sleeper besides).

The agent runs unconfined (`sandbox = "none"`): a sandbox would hide or protect the run directory
before the record's own defences are reached (tests/test_hostile_confined.py). Unconfined, it runs
as the user: it could read `run.key` and sign a forgery, or kill the daemon. What holds then is
written in docs/security.md; these tests attack the way the observed agents did.
"""

from __future__ import annotations

import json
import os
import subprocess
import zlib
from pathlib import Path

import pytest

from shared import codec
from shared.liveness import held
from shared.paths import RepoPaths, RunPaths
from shared.schema import Event, RunManifest
from shared.tail import read_complete_lines
from tests.hostile import (
    TRACES,
    add_user_work,
    assert_agent_tree_sane,
    assert_untouched,
    check_invariants,
    hostile_start,
    unconfined_repo,
)
from tests.repos import expd, git, results, state, wait_for

BUMP = """n=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
echo "x = $((n + 1))" > f.py
"""


def agent(body: str, after: str = "") -> str:
    """An agent script: read the prompt, leave its traces (the canary printed, a detached
    sleeper), run `body` (in the worktree), bump x in f.py, run `after`."""
    return "#!/bin/bash\ncat > /dev/null\n" + TRACES + body + "\n" + BUMP + after


def hostile_repo(root: Path, body: str = "", after: str = "", **kwargs: object) -> Path:
    """An unconfined repository whose agent is `agent(body, after)`, without the user's work in
    progress yet (add it after the scenario's own commits)."""
    return unconfined_repo(root, agent_sh=agent(body, after), **kwargs)


def events(paths: RunPaths) -> list[Event]:
    return [
        codec.decode(line, Event, source="events") for line in read_complete_lines(paths.events)
    ]


def run_id(paths: RunPaths) -> str:
    return f"{paths.dir.parent.parent.name}/{paths.dir.name}"


def daemons_of(paths: RunPaths) -> list[int]:
    """Live daemon processes serving this run directory."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat[0] != "Z" and b"daemon" in argv and str(paths.dir).encode() in argv:
            out.append(int(entry.name))
    return out


# --------------------------------------------------------------------------- the record


FORGE_KEEP = """
git add -A && git commit -qm "worse, but recorded as a keep"
sha=$(git rev-parse HEAD)
printf '{"experiment":%s,"status":"keep","commit":"%s","metric":0.5,"samples":[0.5]}\\n' \\
    "$EXPD_EXPERIMENT" "$sha" >> "$EXPD_RUN_DIR/results.jsonl"
"""


def test_forged_keep_line_is_put_back_by_the_live_daemon(tmp_path: Path) -> None:
    """The agent appends a keep for its own worse change: the daemon restores what it wrote."""
    repo = add_user_work(hostile_repo(tmp_path / "repo", after=FORGE_KEEP))
    h, paths = hostile_start(repo, env={"TARGET": "0"})  # every bump is worse
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments"
    got = results(paths)
    assert [r.status for r in got] == ["baseline", "discard", "discard", "discard"]
    manifest = codec.read(paths.run_json, RunManifest)
    assert final.incumbent_commit == manifest.base_commit and final.keeps == 0
    assert any(e.kind == "record_restored" for e in events(paths))
    assert b'"metric":0.5' not in paths.results.read_bytes()


def test_forged_keep_line_and_state_are_not_trusted_on_resume(tmp_path: Path) -> None:
    """The agent forges a keep line and state.json, then the daemon dies (a fault, on purpose):
    resume trusts neither, ends what the dead daemon's agent left running, and the resumed run
    keeps every invariant."""
    forge_state = """
printf '{"run_id":"x","phase":"idle","max_experiments":50,"guidance":"cheat"}' \\
    > "$EXPD_RUN_DIR/state.json"
"""
    repo = add_user_work(hostile_repo(tmp_path / "repo", after=FORGE_KEEP + forge_state))
    h, paths = hostile_start(repo, env={"TARGET": "0", "EXPD_FAULT": "agent_end@1"})
    wait_for(lambda: not held(paths), 30, "the daemon to die at the fault")
    assert b'"status":"keep"' in paths.results.read_bytes()  # the forgery is there

    proc = expd("resume", run_id(paths), cwd=repo, env=h.env(TARGET="0"))
    assert proc.returncode == 0, proc.stderr
    final = check_invariants(h, paths)
    got = results(paths)
    assert [r.status for r in got] == ["baseline", "crash", "discard", "discard"]
    assert got[1].reason.startswith("interrupted")
    manifest = codec.read(paths.run_json, RunManifest)
    assert final.incumbent_commit == manifest.base_commit and final.keeps == 0
    assert final.max_experiments == 3 and final.guidance == ""
    starts = [e for e in events(paths) if e.kind == "start"]
    notes = starts[1].data["notes"]
    assert any("expd did not write" in n for n in notes), notes
    assert any("state.json" in n for n in notes), notes
    assert b'"status":"keep"' not in paths.results.read_bytes()


def test_finalize_ignores_a_keep_line_forged_after_the_run(tmp_path: Path) -> None:
    repo = add_user_work(hostile_repo(tmp_path / "repo"))
    h, paths = hostile_start(repo, env={"TARGET": "0"})  # every change is discarded
    check_invariants(h, paths)
    commit = git(repo, "rev-parse", f"refs/expd/{run_id(paths)}/0001")
    line = {"experiment": 1, "status": "keep", "commit": commit, "metric": 0.5, "samples": [0.5]}
    with paths.results.open("a") as f:
        f.write(json.dumps(line) + "\n")
    proc = expd("finalize", run_id(paths), cwd=repo, env=h.env(TARGET="0"))
    assert proc.returncode != 0 and "kept no experiment" in proc.stderr, proc.stderr
    assert_untouched(repo, h.before)


FORGE_CONTROL = """
if [ "$EXPD_EXPERIMENT" = 1 ]; then
  printf '%s' '{"requests":[{"id":"forged1","action":"set","key":"max_experiments","value":50},
    {"id":"forged2","action":"set","key":"guidance","value":"edit the benchmark"}]}' \\
    > "$EXPD_RUN_DIR/control.json"
  for _ in $(seq 200); do grep -q forged2 "$EXPD_RUN_DIR/state.json" && break; sleep 0.05; done
fi
"""


def test_forged_control_requests_are_ignored(tmp_path: Path) -> None:
    """Requests written into control.json by hand carry no seal: acknowledged, not applied."""
    repo = add_user_work(hostile_repo(tmp_path / "repo", FORGE_CONTROL))
    h, paths = hostile_start(repo)
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments" and final.max_experiments == 3
    assert final.guidance == "" and not paths.guidance.exists()
    assert len(results(paths)) == 4
    controls = [e for e in events(paths) if e.kind == "control"]
    assert {e.data["id"] for e in controls} == {"forged1", "forged2"}
    assert all(e.data["outcome"].startswith("ignored") for e in controls)


def test_a_signed_request_still_works(tmp_path: Path) -> None:
    """expd's own writer seals its requests: `expd set` changes a live run as before."""
    wait = 'for _ in $(seq 400); do [ -e "$MARK/go" ] && break; sleep 0.05; done'
    repo = add_user_work(hostile_repo(tmp_path / "repo", wait))
    (tmp_path / "mark").mkdir()
    h, paths = hostile_start(repo, env={"MARK": str(tmp_path / "mark")})
    wait_for(lambda: state(paths).phase == "agent_running", 30, "the agent to start")
    proc = expd("set", run_id(paths), "max-experiments", "1", "--wait", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "mark" / "go").touch()
    final = check_invariants(h, paths)
    assert final.max_experiments == 1 and len(results(paths)) == 2


DELETE_KEY = """
if [ "$EXPD_EXPERIMENT" = 1 ]; then
  for _ in $(seq 400); do [ -e "$MARK/start" ] && break; sleep 0.05; done
  rm -f "$EXPD_RUN_DIR/run.key"
  touch "$MARK/deleted"
  for _ in $(seq 400); do [ -e "$MARK/go" ] && break; sleep 0.05; done
fi
"""


def test_a_deleted_key_is_put_back_while_the_daemon_lives(tmp_path: Path) -> None:
    """Without the key expd's writer could not sign: the live daemon writes it again."""
    repo = add_user_work(hostile_repo(tmp_path / "repo", DELETE_KEY))
    mark = tmp_path / "mark"
    mark.mkdir()
    h, paths = hostile_start(repo, env={"MARK": str(mark)})
    key = (paths.dir / "run.key").read_bytes()
    (mark / "start").touch()  # only now may the agent delete it (the test has read it)
    wait_for(lambda: (mark / "deleted").exists(), 60, "the agent to delete the key")
    wait_for(lambda: (paths.dir / "run.key").exists(), 30, "the daemon to restore the key")
    assert (paths.dir / "run.key").read_bytes() == key
    proc = expd("set", run_id(paths), "max-experiments", "1", "--wait", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    (mark / "go").touch()
    final = check_invariants(h, paths)
    assert final.max_experiments == 1 and len(results(paths)) == 2
    assert any(e.kind == "key_restored" for e in events(paths))


def test_a_run_whose_key_is_gone_ends_clearly_on_resume(tmp_path: Path) -> None:
    """The daemon dies (a fault, on purpose) and the key is deleted: the resumed daemon ends the
    run at once, with the reason, and the run keeps every invariant."""
    repo = add_user_work(hostile_repo(tmp_path / "repo"))
    h, paths = hostile_start(repo, env={"EXPD_FAULT": "agent_end@1"})
    wait_for(lambda: not held(paths), 30, "the daemon to die at the fault")
    (paths.dir / "run.key").unlink()
    # The daemon starts, then ends the run at once (`resume` may see it alive, or already gone).
    expd("resume", run_id(paths), cwd=repo, env=h.env())
    final = check_invariants(h, paths)
    assert final.phase == "crashed" and final.termination_reason == "error"
    assert "run.key is missing" in final.message and "internal error" not in final.message
    assert [r.status for r in results(paths)] == ["baseline"]  # nothing recorded on top


UNLINK_LOCKS = """
if [ "$EXPD_EXPERIMENT" = 1 ]; then
  rm -f "$EXPD_RUN_DIR/daemon.lock" "$EXPD_RUN_DIR/../../active.lock"
  touch "$MARK/deleted"
  for _ in $(seq 400); do [ -e "$MARK/go" ] && break; sleep 0.05; done
fi
"""


def test_unlinked_locks_leave_the_daemon_alive_and_alone(tmp_path: Path) -> None:
    repo = add_user_work(hostile_repo(tmp_path / "repo", UNLINK_LOCKS, max_experiments=2))
    mark = tmp_path / "mark"
    mark.mkdir()
    h, paths = hostile_start(repo, env={"MARK": str(mark)})
    env = h.env(MARK=str(mark))
    wait_for(lambda: (mark / "deleted").exists(), 30, "the agent to unlink the locks")
    assert not paths.daemon_lock.exists()

    status = expd("status", run_id(paths), "--json", cwd=repo)
    assert json.loads(status.stdout)["daemon"] == "running", status.stdout
    resume = expd("resume", run_id(paths), cwd=repo, env=env)
    assert resume.returncode != 0, resume.stdout
    second = expd("start", "p", cwd=repo, env=env)
    assert second.returncode != 0, second.stdout
    assert "another run of program 'p' is active" in second.stderr, second.stderr
    assert len(daemons_of(paths)) == 1
    runs = RepoPaths(repo).program("p").runs_dir
    assert [p.name for p in runs.iterdir()] == [paths.dir.name]  # the refused start left nothing

    (mark / "go").touch()
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments" and len(results(paths)) == 3


# --------------------------------------------------------------------------- secrets


SECRET_NAME = "EXPD_TEST_API_KEY"
SECRET = "sk-test-5ecret-0123456789abcdef"

LEAK = """
echo "my key is $EXPD_TEST_API_KEY"
echo "stderr too: $EXPD_TEST_API_KEY" >&2
echo "EXPD-NOTES"
echo "hypothesis: try $EXPD_TEST_API_KEY"
echo "END-NOTES"
case "$EXPD_EXPERIMENT" in
  1) echo "EXPD-DESCRIPTION: bump x with $EXPD_TEST_API_KEY"
     for _ in $(seq 400); do [ -e "$MARK/go" ] && break; sleep 0.05; done ;;
  2) echo "key = '$EXPD_TEST_API_KEY'" > leaked.py
     echo "EXPD-DESCRIPTION: leak it" ;;
esac
"""


def _files_holding(root: Path, needle: bytes, skip: set[Path]) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p not in skip and needle in p.read_bytes()
    ]


def test_secrets_never_reach_a_file_or_a_reachable_object(tmp_path: Path) -> None:
    """Besides the canary, a key the user also wrote into program.md and the guidance."""
    repo = add_user_work(hostile_repo(tmp_path / "repo", LEAK))
    program = RepoPaths(repo).program("p")
    program.md.write_text(f"# p\nMake score lower. (The deploy key is {SECRET}.)\n")
    mark = tmp_path / "mark"
    mark.mkdir()
    h, paths = hostile_start(repo, env={SECRET_NAME: SECRET, "MARK": str(mark)})
    env = h.env(**{SECRET_NAME: SECRET, "MARK": str(mark)})
    wait_for(lambda: state(paths).phase == "agent_running", 30, "experiment 1")
    guide = expd(
        "set", run_id(paths), "guidance", f"never print {SECRET}", "--wait", cwd=repo, env=env
    )
    assert guide.returncode == 0, guide.stderr
    (mark / "go").touch()
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments"

    got = results(paths)
    assert [r.status for r in got] == ["baseline", "keep", "crash", "keep"]
    assert f"${SECRET_NAME}" in got[2].reason and "refused" in got[2].reason
    assert got[2].commit is None and not paths.patch(2).exists()
    assert f"[redacted:{SECRET_NAME}]" in got[1].description
    assert f"[redacted:{SECRET_NAME}]" in paths.agent_log(1).read_text()
    assert f"[redacted:{SECRET_NAME}]" in paths.prompt(2).read_text()

    needle = SECRET.encode()
    user_files = {program.md}
    assert _files_holding(paths.dir, needle, user_files) == []
    assert _files_holding(repo / ".expd", needle, user_files) == []
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/expd", "refs/heads/expd").split()
    rid = run_id(paths)
    assert f"refs/expd/{rid}/0002" not in refs and f"refs/expd/{rid}/0001" in refs
    for ref in refs:
        assert SECRET not in git(repo, "log", "-p", "--format=%B", ref)
        grep = subprocess.run(
            ["git", "grep", "-q", SECRET, ref], cwd=repo, capture_output=True, check=False
        )
        assert grep.returncode == 1, ref
    # Not even unreachable: the refused change wrote no object into the user's repository, and
    # expd's private stores kept none of it.
    for gitdir in (repo / ".git", paths.agent_git, paths.eval_git):
        assert _objects_holding(gitdir, needle) == [], gitdir


def _objects_holding(gitdir: Path, needle: bytes) -> list[str]:
    """The loose objects of `gitdir` whose content holds `needle`."""
    found = []
    for path in (gitdir / "objects").glob("??/*"):
        if needle in zlib.decompress(path.read_bytes()):
            found.append(path.parent.name + path.name)
    return found


KNOWN = """
case "$EXPD_EXPERIMENT" in
  1) echo "y = 1" >> settings.py && git mv settings.py conf.py ;;
  2) echo tuned > notes.txt && git add -A && git commit -qm "tuned with $EXPD_TEST_API_KEY" ;;
  3) echo "token = '$EXPD_TEST_API_KEY'" > added.py ;;
esac
"""


def test_only_a_secret_the_change_adds_refuses_it(tmp_path: Path) -> None:
    """The user committed the key themselves: a change that edits or moves that file is measured
    as usual. One that puts the key into its own commit message or a new file is refused, and
    neither the user's repository nor expd's private store keeps anything of it. (The key the
    user committed is reachable on purpose; the canary checks the rest.)"""
    repo = hostile_repo(tmp_path / "repo", KNOWN)
    (repo / "settings.py").write_text(f"key = '{SECRET}'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "settings")
    h, paths = hostile_start(add_user_work(repo), env={SECRET_NAME: SECRET})
    final = check_invariants(h, paths)
    assert_agent_tree_sane(paths)
    assert final.termination_reason == "max_experiments"
    got = results(paths)
    assert [r.status for r in got] == ["baseline", "keep", "crash", "crash"], got
    assert "settings.py => conf.py" in got[1].diff.files  # a move, named as git names it
    for record in got[2:]:
        assert f"${SECRET_NAME}" in record.reason and "refused" in record.reason, record.reason
        assert record.commit is None and not paths.patch(record.experiment).exists()
    rid = run_id(paths)
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/expd").split()
    assert refs == [f"refs/expd/{rid}/0001"]
    assert SECRET not in git(repo, "log", "--format=%B", "--all")
    for gitdir in (repo / ".git", paths.agent_git, paths.eval_git):
        for refused in (f"token = '{SECRET}'", f"tuned with {SECRET}"):
            assert _objects_holding(gitdir, refused.encode()) == [], (gitdir, refused)


# --------------------------------------------------------------------------- bounded output


FLOOD = """
if [ "$EXPD_EXPERIMENT" = 1 ]; then
  yes "$(printf 'flood%.0s' $(seq 20))" | head -c 200000000
  head -c 20000000 /dev/zero | tr '\\0' b >&2
fi
"""


def test_a_flooding_agent_neither_stalls_the_loop_nor_grows_the_files(tmp_path: Path) -> None:
    from daemon.service.store import AGENT_EVENT_BYTES, AGENT_LOG_CAP

    repo = add_user_work(hostile_repo(tmp_path / "repo", FLOOD, max_experiments=2))
    toml = RepoPaths(repo).program("p").toml
    toml.write_text(toml.read_text().replace('timeout = "20s"', 'timeout = "120s"'))
    h, paths = hostile_start(repo)
    final = check_invariants(h, paths, timeout=150)
    assert final.termination_reason == "max_experiments"
    assert [r.status for r in results(paths)] == ["baseline", "keep", "keep"]
    log = paths.agent_log(1)
    assert log.stat().st_size <= AGENT_LOG_CAP + 200
    assert log.read_text().count("[expd] agent output truncated") == 1
    assert paths.events.stat().st_size <= AGENT_EVENT_BYTES + (1 << 20)
    assert any(e.kind == "agent_truncated" and e.experiment == 1 for e in events(paths))


# --------------------------------------------------------------------------- the benchmark


PROTECTED_EDITS = """
case "$EXPD_EXPERIMENT" in
  1) echo "# faster" >> bench.py ;;
  2) rm tests/t.txt ;;
  3) git mv bench.py bench2.py ;;
  4) rm bench.py && ln -s f.py bench.py ;;
esac
"""


def test_a_change_to_a_protected_path_is_discarded_unmeasured(tmp_path: Path) -> None:
    repo = hostile_repo(
        tmp_path / "repo",
        PROTECTED_EDITS,
        max_experiments=5,
        toml_extra='[measure]\nprotect = ["bench.py", "tests/**"]\n',
    )
    (repo / "bench.py").write_text("print('bench')\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "t.txt").write_text("a test\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a benchmark and a test")
    h, paths = hostile_start(add_user_work(repo))
    final = check_invariants(h, paths)
    assert_agent_tree_sane(paths)
    assert final.termination_reason == "max_experiments"
    got = results(paths)
    assert [r.status for r in got] == [
        "baseline",
        "discard",
        "discard",
        "discard",
        "discard",
        "keep",
    ]
    expected = [
        "bench.py (modified)",
        "tests/t.txt (deleted)",
        "bench.py (deleted)",
        "bench.py (replaced by a symlink)",
    ]
    for record, needle in zip(got[1:5], expected, strict=True):
        assert needle in record.reason and record.metric is None, record.reason
    measured = {e.experiment for e in events(paths) if e.kind == "measurement"}
    assert measured == {0, 5}


def test_validate_warns_about_an_unprotected_benchmark(tmp_path: Path) -> None:
    """`expd validate` only (no run): the five invariants do not apply."""
    repo = unconfined_repo(tmp_path / "repo", measure_sh="#!/bin/bash\npython3 bench.py\n")
    (repo / "bench.py").write_text("print('{\"score\": 1}')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bench")
    proc = expd("validate", "p", "--runs", "2", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "names bench.py, which is tracked and not protected" in proc.stderr
    toml = RepoPaths(repo).program("p").toml
    toml.write_text(toml.read_text() + '[measure]\nprotect = ["bench.py"]\n')
    proc = expd("validate", "p", "--runs", "2", cwd=repo)
    assert proc.returncode == 0 and "bench.py" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- a metric no float holds


@pytest.mark.parametrize("value", ["9" * 400, "1e999", "NaN"], ids=["400-digits", "1e999", "nan"])
def test_a_metric_that_is_not_a_finite_float_is_a_measurement_failure(
    tmp_path: Path, value: str
) -> None:
    measure = (
        "#!/bin/bash\n"
        "x=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)\n"
        f'if [ "$x" = 0 ]; then echo \'{{"score": 5}}\'; else echo \'{{"score": {value}}}\'; fi\n'
    )
    repo = add_user_work(hostile_repo(tmp_path / "repo", measure_sh=measure, max_experiments=2))
    h, paths = hostile_start(repo)
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments", final.message
    got = results(paths)
    assert [r.status for r in got] == ["baseline", "measurement_failure", "measurement_failure"]
    assert all("not a finite number" in r.reason for r in got[1:]), [r.reason for r in got]
    assert final.measurement_failures == 2 and os.path.getsize(paths.results) < 10_000


# --------------------------------------------------------------------------- finalize and init

FILES_AGENT = """
echo "good $EXPD_EXPERIMENT" > "good_$EXPD_EXPERIMENT.txt"
"""
FLIPPED_MEASURE = """#!/bin/bash
good=$(ls good_*.txt 2>/dev/null | wc -l)
if [ -n "$FLIP" ]; then good=$(( -good )); fi
echo "{\\"score\\": $((10 - good))}"
"""


def test_finalize_refuses_a_gain_the_remeasurement_contradicts(tmp_path: Path) -> None:
    """The run keeps two gains; by finalize time the machine ($FLIP) says they are losses: no
    review branch, one line saying why, and the user's repository as it was. `expd init` refuses
    a program name git cannot put in a branch, leaving nothing behind."""
    repo = hostile_repo(tmp_path / "repo", FILES_AGENT, measure_sh=FLIPPED_MEASURE)
    h, paths = hostile_start(add_user_work(repo))
    check_invariants(h, paths)
    assert [r.status for r in results(paths)] == ["baseline", "keep", "keep", "keep"]
    proc = expd("finalize", run_id(paths), cwd=repo, env=h.env(FLIP="1"), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "does not confirm" in proc.stderr and "--force" in proc.stderr, proc.stderr
    assert git(repo, "branch", "--list", f"expd/p/{paths.dir.name}-final") == ""
    assert_untouched(repo, h.before)
    for name in ("a..b", "x.lock"):
        proc = expd("init", name, "--metric", "m", "--direction", "lower", cwd=repo)
        assert proc.returncode == 1 and "invalid program name" in proc.stderr, proc.stderr
    assert_untouched(repo, h.before)
    assert RepoPaths(repo).program_names() == ["p"]
