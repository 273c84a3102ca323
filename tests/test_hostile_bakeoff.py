"""Hostile agents in a bakeoff, through the real daemon: nothing an agent does changes a recorded
result. Confined (bwrap), it cannot reach another slot's tree, a criteria tree, the bakeoff folder
(hidden tests) or the run's record; whatever it leaves in its tree (an ignored file a criterion
looks for) reaches neither the criteria nor the next attempt; unconfined, its edits of
attempts.jsonl are put back by the live daemon and not trusted by a resumed one."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from daemon.commands.bakeoff import resume_bakeoff, start_bakeoff
from daemon.ops import sandbox
from shared import codec, seal
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.liveness import held
from shared.schema import DaemonInfo
from shared.tail import read_complete_lines
from tests.bakeoff_repos import (
    PREAMBLE,
    SOLVE,
    events,
    make_bakeoff_repo,
    newest,
    records,
    statuses,
    wait_done,
)
from tests.repos import git, wait_for

PROBES = r"""
try() { if bash -c "$2" >/dev/null 2>&1; then echo "ALLOWED $1"; else echo "REFUSED $1"; fi; }
bakeoff="$HOSTILE_REPO/.expd/bakeoffs/bk"
k=${EXPD_WORKTREE##*-}
other="${EXPD_WORKTREE%-*}-$((1 - k))"
try write-other-slot "mkdir -p '$other' && echo planted > '$other/planted.txt'"
try read-other-slot "ls '$other' | grep -q ."
try read-criteria-tree "ls '$HOSTILE_REPO/.expd/eval' | grep -q ."
try read-bakeoff "cat '$bakeoff/bakeoff.toml'"
try read-hidden-test "cat '$bakeoff/hidden/check.sh'"
try write-record "echo forged >> \$(ls -d '$bakeoff'/runs/*)/attempts.jsonl"
try read-key "cat '$bakeoff'/runs/*/run.key"
try read-checkout "cat '$HOSTILE_REPO/README.md'"
try read-prompt "grep -q solved '$EXPD_PROMPT_FILE'"
try write-own-tree "echo mine > own.txt && rm own.txt"
"""
EXPECTED = {
    "write-other-slot": "REFUSED",
    "read-other-slot": "REFUSED",
    "read-criteria-tree": "REFUSED",
    "read-bakeoff": "REFUSED",
    "read-hidden-test": "REFUSED",
    "write-record": "REFUSED",
    "read-key": "REFUSED",
    "read-checkout": "REFUSED",
    "read-prompt": "ALLOWED",
    "write-own-tree": "ALLOWED",
}
CHECK = '#!/bin/bash\ngrep -qx "solved-$1" "answers/$1.txt"\n'
"""The hidden test, in the bakeoff folder: the criteria read it, the agents cannot."""


def all_sealed(paths: BakeoffRunPaths) -> bool:
    """Whether every line of attempts.jsonl is one the daemon sealed."""
    key = seal.load_key(paths)
    assert key is not None
    return all(seal.unseal(key, line) for line in read_complete_lines(paths.attempts))


def verdicts(log: str) -> dict[str, str]:
    out = {}
    for line in log.splitlines():
        word, _, name = line.partition(" ")
        if word in ("ALLOWED", "REFUSED"):
            out[name] = word
    return out


def test_a_confined_agent_reaches_no_other_tree_the_bakeoff_or_the_record(
    tmp_path: Path,
) -> None:
    if not sandbox.probe("bwrap").ok:
        pytest.skip(f"bwrap is not available here: {sandbox.probe('bwrap').detail}")
    repo = tmp_path / "repo"
    bk = make_bakeoff_repo(
        repo,
        tasks=2,
        variants={"hostile": "hostile", "solver": "solver"},
        agents={"hostile": PREAMBLE + PROBES + SOLVE},
        sandbox="bwrap",
        env={"HOSTILE_REPO": str(repo), "AGENT_EXTRA": "sleep 0.3"},
    )
    (bk.dir / "hidden").mkdir()
    (bk.dir / "hidden" / "check.sh").write_text(CHECK)
    text = bk.toml.read_text()
    for task in ("t0", "t1"):
        text = text.replace(
            f'"command:grep -q solved-{task} answers/{task}.txt"',
            f'"command:bash \\"$EXPD_BAKEOFF_DIR/hidden/check.sh\\" {task}"',
        )
    bk.toml.write_text(text)
    paths = BakeoffRunPaths(start_bakeoff(repo, "bk").run_dir)
    state = wait_done(paths)
    assert state.termination_reason == "finished" and state.sandbox == "bwrap"
    for task in ("t0", "t1"):
        log = paths.attempt(task, "hostile", 1).agent_log.read_text()
        assert verdicts(log) == EXPECTED, log
    # Every attempt passed the hidden test; nothing planted reached another attempt's work.
    assert set(statuses(paths).values()) == {"passed"}
    for record in newest(paths).values():
        files = git(repo, "show", "--name-only", "--format=", record.commit or "")
        assert files.splitlines() == [f"answers/{record.task}.txt"], files
    assert len(read_complete_lines(paths.attempts)) == 4 and all_sealed(paths)


def test_an_ignored_file_left_in_the_tree_reaches_no_criterion_and_no_next_attempt(
    tmp_path: Path,
) -> None:
    cheater = PREAMBLE + "mkdir -p build && touch build/ok\n"
    peeker = PREAMBLE + 'if [ -e build/ok ]; then echo "FOUND build/ok"; fi\n' + SOLVE
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=2,
        variants={"cheater": "cheater", "peeker": "peeker"},
        agents={"cheater": cheater, "peeker": peeker},
        concurrency=1,
    )
    (bk.repo / ".gitignore").write_text("build/\n")
    git(bk.repo, "add", ".gitignore")
    git(bk.repo, "commit", "-qm", "ignore build output")
    bk.toml.write_text(
        bk.toml.read_text().replace(
            'criteria = ["test_pass', 'criteria = ["command:test -f build/ok", "test_pass'
        )
    )
    paths = BakeoffRunPaths(start_bakeoff(bk.repo, "bk").run_dir)
    wait_done(paths)
    got = newest(paths)
    for task in ("t0", "t1"):
        cheat = got[f"{task}/cheater/1"]
        assert cheat.status == "failed" and not cheat.changed  # the ignored file is no change
        assert cheat.criteria[0].passed is False
        honest = got[f"{task}/peeker/1"]
        assert honest.criteria[0].passed is False and honest.score == pytest.approx(2 / 3)
        log = paths.attempt(task, "peeker", 1).agent_log.read_text()
        assert "FOUND" not in log, "the previous attempt's file reached the next one"


FORGER = (
    PREAMBLE
    + r"""
# Marked before the forgery a test waits for: a daemon killed right after it never leaves a
# resumed attempt that sleeps again.
nap=
if [ "$EXPD_TASK" = t1 ] && [ -n "$FORGER_ONCE" ] && [ ! -e "$FORGER_ONCE" ]; then
  touch "$FORGER_ONCE"; nap=60
fi
record=$(ls -d "$HOSTILE_REPO"/.expd/bakeoffs/bk/runs/*)/attempts.jsonl
sed -i 's/"status":"failed"/"status":"passed"/' "$record"
fake=$(printf '0%.0s' $(seq 64))
forged='"variant":"forger","attempt":1,"status":"passed","score":1.0'
echo '{"task":"'$EXPD_TASK'",'"$forged"',"seal":"'$fake'"}' >> "$record"
echo FORGED
[ -z "$nap" ] || sleep "$nap"
exit 1
"""
)


def test_edits_of_attempts_jsonl_are_put_back_by_the_live_daemon(tmp_path: Path) -> None:
    """Unconfined, the agent can write the record: before every append and at the end the
    daemon puts back what it wrote (the forger's last edit comes after the last append)."""
    repo = tmp_path / "repo"
    make_bakeoff_repo(
        repo,
        tasks=3,
        variants={"half": "half", "forger": "forger"},
        agents={"forger": FORGER},
        concurrency=1,
        sandbox="none",
        env={"HOSTILE_REPO": str(repo)},
    )
    paths = BakeoffRunPaths(start_bakeoff(repo, "bk").run_dir)
    state = wait_done(paths)
    assert "FORGED" in paths.attempt("t2", "forger", 1).agent_log.read_text()
    assert statuses(paths) == {
        "t0/half/1": "passed",
        "t0/forger/1": "error",
        "t1/half/1": "failed",
        "t1/forger/1": "error",
        "t2/half/1": "passed",
        "t2/forger/1": "error",
    }
    assert len(read_complete_lines(paths.attempts)) == 6 and all_sealed(paths)
    assert sum(1 for e in events(paths) if e.kind == "record_restored") >= 3
    assert state.termination_reason == "finished"


def test_a_record_edited_while_the_daemon_was_dead_is_not_trusted(tmp_path: Path) -> None:
    """The forger flips t1/half's `failed` and waits; the daemon is killed: the resumed daemon
    drops the lines it did not seal, runs t1/half again (failed again) and the forger's attempt,
    which forges once more and is put back."""
    repo = tmp_path / "repo"
    make_bakeoff_repo(
        repo,
        tasks=2,
        variants={"half": "half", "forger": "forger"},
        agents={"forger": FORGER},
        concurrency=1,
        sandbox="none",
        env={"HOSTILE_REPO": str(repo), "FORGER_ONCE": str(tmp_path / "once")},
        timeout="300s",  # the forger waits (sleep 60) to be killed with the daemon, not timed out
    )
    paths = BakeoffRunPaths(start_bakeoff(repo, "bk").run_dir)
    flipped = b'"task":"t1","variant":"half","attempt":1,"status":"passed"'
    wait_for(lambda: flipped in paths.attempts.read_bytes(), 60, "the forgery")
    os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
    wait_for(lambda: not held(paths), 60, "the daemon to die")
    resume_bakeoff(paths.dir)
    state = wait_done(paths)
    assert state.termination_reason == "finished" and state.resumes == 1
    start = [e for e in events(paths) if e.kind == "start"][-1]
    assert any("dropped 2 attempts line(s) expd did not write" in n for n in start.data["notes"])
    assert statuses(paths) == {
        "t0/half/1": "passed",
        "t0/forger/1": "error",
        "t1/half/1": "failed",
        "t1/forger/1": "error",
    }
    assert [(r.key, r.status) for r in records(paths) if r.variant == "half"] == [
        ("t0/half/1", "passed"),
        ("t1/half/1", "failed"),
    ]
    assert all_sealed(paths)
