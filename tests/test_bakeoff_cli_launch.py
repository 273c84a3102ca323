"""`expd bakeoff init`, the errors `start` gives for a bakeoff.toml before any daemon, `replay`'s
checks, and the plain-text follower — everything of the launch commands that needs no daemon
(the daemon's own tests start, resume and replay real runs).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from shared import codec
from shared.atomic import write_atomic
from shared.bakeoffs.config import load_bakeoff
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths
from shared.bakeoffs.schema import BakeoffState, CriterionResult
from shared.cli.bakeoff_follow import attempt_line, follow_attempts, summary_lines
from shared.cli.bakeoff_launch import check_replay, replay_key
from shared.errors import UserError
from shared.locking import try_lock, unlock
from shared.runs import ref_for_dir
from shared.schema import DaemonInfo
from tests.bakeoff_fakes import STAMP, append, make_run, record, spec
from tests.bakeoff_repos import make_bakeoff_repo, newest, statuses, wait_done
from tests.repos import expd, git

VARIANT = '[[variant]]\nid = "a"\nkind = "command"\ncommand = "true"\n'
TASK = '[[task]]\nid = "t1"\nprompt = "do it"\ncriteria = ["command:true"]\n'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "f.py").write_text("x = 0\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    return root


def one_line_error(proc: object, *needles: str) -> str:
    err = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode == 1, (proc.returncode, err, proc.stdout)  # type: ignore[attr-defined]
    assert err.startswith("expd: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_init_writes_a_template_that_loads_and_refuses_to_overwrite(repo: Path) -> None:
    made = expd("bakeoff", "init", "cmp", "--json", cwd=repo)
    assert made.returncode == 0, made.stderr
    paths = BakeoffPaths(repo, "cmp")
    assert json.loads(made.stdout) == {"bakeoff": "cmp", "path": str(paths.toml)}
    spec = load_bakeoff(paths)
    assert [v.id for v in spec.variants] == ["baseline", "careful"]
    assert [t.id for t in spec.tasks] == ["example"]
    assert spec.variants[1].prompt_prefix.startswith("Work carefully")
    assert "/.expd/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert git(repo, "status", "--porcelain") == ""

    again = expd("bakeoff", "init", "cmp", cwd=repo)
    one_line_error(again, "bakeoff 'cmp' already exists", str(paths.toml))
    bad = expd("bakeoff", "init", "no/pe", cwd=repo)
    one_line_error(bad, "invalid bakeoff name 'no/pe'")
    assert not (repo / ".expd" / "bakeoffs" / "no").exists()

    human = expd("bakeoff", "init", "second", cwd=repo)
    assert human.returncode == 0, human.stderr
    assert "next: edit it, then: expd bakeoff start second" in human.stdout
    assert str(BakeoffPaths(repo, "second").toml) in human.stdout


def write(repo: Path, text: str, name: str = "b") -> BakeoffPaths:
    paths = BakeoffPaths(repo, name)
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.toml.write_text(text)
    return paths


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("colour = 1\n" + VARIANT + TASK, "unknown key 'colour'"),
        (VARIANT + 'modle = "x"\n' + TASK, "unknown key 'modle' in [[variant]] 'a'"),
        (VARIANT + TASK + 'promt = "x"\n', "unknown key 'promt' in [[task]] 't1'"),
        (VARIANT + '[[task]]\nid = "t1"\nprompt = "do"\n', "missing key 'criteria'"),
        (
            VARIANT + '[[task]]\nid = "t1"\nprompt = "do"\ncriteria = ["passes:true"]\n',
            "criterion 'passes:true': write TYPE:TARGET",
        ),
        (
            VARIANT
            + '[[task]]\nid = "t1"\nprompt = "do"\ncriteria = [{ command = "x", field = "ms" }]\n',
            "'field' is for metric criteria",
        ),
        (VARIANT + TASK + TASK, "duplicate task id 't1'"),
        (VARIANT + VARIANT + TASK, "duplicate variant id 'a'"),
        (
            VARIANT + '[[task]]\nid = "t1"\nprompt_file = "nope.md"\ncriteria = ["command:true"]\n',
            "prompt_file 'nope.md' cannot be read",
        ),
        (TASK, "no [[variant]]"),
        (VARIANT, "no tasks"),
        (
            '[[variant]]\nid = "a"\nkind = "command"\n' + TASK,
            "agent kind 'command' needs 'command'",
        ),
        ("attempts = 0\n" + VARIANT + TASK, "attempts must be a whole number ≥ 1"),
        ("attempts = [\n", "invalid TOML"),
    ],
)
def test_bakeoff_toml_errors_name_the_file_and_key(repo: Path, text: str, error: str) -> None:
    paths = write(repo, text)
    with pytest.raises(UserError) as caught:
        load_bakeoff(paths)
    message = str(caught.value)
    assert message.startswith(f"{paths.toml}: "), message
    assert error in message, message


def test_a_tasks_dir_names_the_task_file_at_fault(repo: Path) -> None:
    paths = write(repo, 'tasks_dir = "tasks"\n' + VARIANT)
    tasks = paths.dir / "tasks"
    tasks.mkdir()
    (tasks / "t1.toml").write_text('prompt = "one"\ncriteria = ["command:true"]\n')
    (tasks / "t2.toml").write_text('prompt = "two"\ncriteria = ["test_pass:true"]\nbse = "HEAD"\n')
    with pytest.raises(UserError) as caught:
        load_bakeoff(paths)
    assert str(caught.value).startswith(f"{tasks / 't2.toml'}: unknown key 'bse'"), caught.value
    (tasks / "t2.toml").write_text('prompt = "two"\ncriteria = ["test_pass:true"]\nbase = "HEAD"\n')
    (tasks / "prompts").mkdir()
    (tasks / "prompts" / "t3.md").write_text("three, from a file\n")
    (tasks / "t3.toml").write_text('prompt_file = "prompts/t3.md"\ncriteria = ["manual:ok?"]\n')
    loaded = load_bakeoff(paths)
    assert [(t.id, t.base_ref) for t in loaded.tasks] == [("t1", ""), ("t2", "HEAD"), ("t3", "")]
    assert loaded.tasks[2].prompt == "three, from a file\n"
    assert loaded.tasks[1].source == str(tasks / "t2.toml")


def test_start_and_resume_refuse_bad_input_in_one_line(repo: Path) -> None:
    one_line_error(
        expd("bakeoff", "start", "nope", cwd=repo),
        "no bakeoff 'nope'",
        "expd bakeoff init nope",
    )
    paths = write(repo, VARIANT + TASK + 'colour = "red"\n')
    one_line_error(expd("bakeoff", "start", "b", "--json", cwd=repo), str(paths.toml), "'colour'")
    one_line_error(expd("bakeoff", "resume", "zzz", cwd=repo), "no run matching 'zzz'")
    one_line_error(expd("bakeoff", cwd=repo), "expd bakeoff needs a subcommand")
    usage = expd("bakeoff", "start", "b", "--json", "--attach", cwd=repo)
    one_line_error(usage, "--attach: not allowed with argument --json")


def replayable(repo: Path) -> BakeoffRunPaths:
    write(
        repo,
        VARIANT.replace('"a"', '"x"')
        + '[[variant]]\nid = "fresh"\nkind = "command"\ncommand = "true"\n'
        + TASK,
        name="bk",
    )
    paths = make_run(repo, spec(tasks=2, variants=("x", "y"), attempts=2), phase="complete")
    append(paths, record("t000", "x", "passed"), record("t000", "y", "failed"))
    append(paths, record("t000", "x", "passed", attempt=2))
    return paths


def test_replay_checks_the_attempt_and_the_variant_first(repo: Path) -> None:
    paths = replayable(repo)
    run = f"bk/{STAMP}"

    def refused(*args: str) -> str:
        base = ["bakeoff", "replay", run, "--task", "t000", "--variant", "x", "--as", "y"]
        overrides = dict(zip(args[::2], args[1::2], strict=True))
        for flag, value in overrides.items():
            base[base.index(flag) + 1] = value
        return one_line_error(expd(*base, cwd=repo))

    err = refused("--task", "t9")
    assert "no task 't9' in bakeoff run bk/" in err and "(tasks: t000, t001)" in err
    assert "no variant 'z' in bakeoff run" in refused("--variant", "z")
    err = refused("--task", "t001")
    assert "attempt t001/x/1 is not recorded" in err and "none yet" in err
    err = refused("--as", "nobody")
    assert "--as 'nobody' is not a variant of bakeoff run" in err
    assert "(x, y) nor of its bakeoff.toml (fresh, x)" in err
    one_line_error(
        expd(
            "bakeoff",
            "replay",
            run,
            "--task",
            "t000",
            "--variant",
            "x",
            "--attempt",
            "3",
            "--as",
            "y",
            cwd=repo,
        ),
        "attempt t000/x/3 is not recorded",
        "(recorded attempts of t000 by x: 1, 2)",
    )
    # A variant of the run, or one only the current bakeoff.toml has, is accepted.
    for other in ("y", "fresh", "x"):
        key = check_replay(paths, task="t000", variant="x", attempt=2, as_variant=other)
        assert key == "t000/x/2"


def test_replay_refuses_a_program_run(repo: Path) -> None:
    run_dir = repo / ".expd" / "programs" / "p" / "runs" / STAMP
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    err = one_line_error(
        expd(
            "bakeoff",
            "replay",
            f"p/{STAMP}",
            "--task",
            "t",
            "--variant",
            "v",
            "--as",
            "w",
            cwd=repo,
        )
    )
    assert "is a program run: this command is for bakeoff runs" in err


def test_the_new_attempt_of_a_replay_is_found_queued_or_recorded(repo: Path) -> None:
    paths = replayable(repo)
    assert replay_key(paths, "t000/x/1", "y") is None
    state = codec.read(paths.state_json, BakeoffState)
    from shared.bakeoffs.schema import Replay

    state.replays = [Replay(task="t000", variant="y", attempt=3, of="t000/x/1")]
    write_atomic(paths.state_json, codec.encode(state))
    assert replay_key(paths, "t000/x/1", "y") == "t000/y/3"
    append(paths, record("t000", "y", "passed", attempt=4, replay_of="t000/x/1"))
    assert replay_key(paths, "t000/x/1", "y") == "t000/y/4"
    assert replay_key(paths, "t000/x/2", "y") is None


def test_attempt_lines_say_what_failed() -> None:
    failing = record(
        "t1",
        "slow",
        "failed",
        attempt=2,
        cost=0.5,
        duration=61,
        criteria=[
            CriterionResult(type="command", target="true", passed=True),
            CriterionResult(
                type="test_pass", target="pytest -q", passed=False, details="x\n3 passed, 1 failed"
            ),
            CriterionResult(type="manual", target="ok?", passed=None),
        ],
    )
    failing.score = 0.5
    line = attempt_line(failing, 3, 12)
    assert line == (
        "[ 3/12] failed    t1 · slow #2  score 0.50  1m01s  $0.500  (1 to mark)"
        " — test_pass:pytest -q — 3 passed, 1 failed"
    )
    crashed = record("t1", "b", "error", error="agent exited with code 1:\nboom", cost=0)
    assert attempt_line(crashed, 1, 2).endswith("— agent exited with code 1: boom")
    replay = record("t1", "b", "passed", attempt=3, replay_of="t1/a/1", cost=0)
    assert (
        attempt_line(replay, 1, 2)
        == "[1/2] passed    t1 · b #3  score 1.00  2s  (replay of t1/a/1)"
    )


def fake_daemon(paths: BakeoffRunPaths) -> int:
    """This process holds the run like a live daemon (its lock and a fresh heartbeat)."""
    fd = try_lock(paths.daemon_lock)
    assert fd is not None
    info = DaemonInfo(pid=os.getpid(), started_at=time.time(), heartbeat_at=time.time())
    write_atomic(paths.daemon_json, codec.encode(info))
    return fd


def test_follow_prints_a_line_per_recorded_attempt_until_the_end(repo: Path) -> None:
    paths = make_run(repo, spec(tasks=2, variants=("a", "b")), phase="running")
    append(paths, record("t000", "a", "passed"))
    fd = fake_daemon(paths)
    ticks = iter(
        [
            lambda: append(paths, record("t000", "b", "failed"), record("t001", "a", "cancelled")),
            lambda: append(paths, record("t001", "a", "passed"), record("t001", "b", "timeout")),
            lambda: finish(paths),
        ]
    )

    def finish(p: BakeoffRunPaths) -> None:
        state = codec.read(p.state_json, BakeoffState)
        state.phase, state.termination_reason = "complete", "finished"
        write_atomic(p.state_json, codec.encode(state))

    out = io.StringIO()
    ref = ref_for_dir(paths.dir, repo)
    try:
        final = follow_attempts(ref, out, sleep=lambda _s: next(ticks)(), from_start=False)
    finally:
        unlock(fd)
    lines = out.getvalue().splitlines()
    attempts = [line.split("  score")[0] for line in lines if " · " in line]
    assert attempts == [
        "[2/4] failed    t000 · b #1",
        "[2/4] cancelled t001 · a #1",
        "[3/4] passed    t001 · a #1",
        "[4/4] timeout   t001 · b #1",
    ]
    phases = [line.split("] ", 1)[1] for line in lines if " · " not in line]
    assert phases == ["running: 1/4 attempts", "complete: 4/4 attempts"]
    assert final.daemon == "finished" and final.done == 4
    summary = summary_lines(final)
    assert summary[0] == f"bakeoff run bk/{STAMP} complete (finished): 4/4"
    assert summary[1].startswith("  a  2/2 done  2 passed (100%)")
    assert summary[2].startswith("  b  2/2 done  0 passed (0%)")


def test_follow_says_when_the_daemon_is_gone(repo: Path) -> None:
    paths = make_run(repo, spec(tasks=1, variants=("a",)), phase="running")
    append(paths, record("t000", "a", "passed"))
    out = io.StringIO()
    final = follow_attempts(ref_for_dir(paths.dir, repo), out, sleep=lambda _s: None)
    assert final.daemon == "dead"
    text = out.getvalue()
    assert "[1/1] passed    t000 · a #1" in text
    assert f"not running (resume with: expd bakeoff resume bk/{STAMP})" in text


# --------------------------------------------------------------------------- with the real daemon


def test_start_json_then_replay_relaunches_the_daemon(tmp_path: Path) -> None:
    bakeoff = make_bakeoff_repo(
        tmp_path / "repo", tasks=2, variants={"solver": "solver", "breaker": "breaker"}
    )
    repo = bakeoff.repo
    started = expd("bakeoff", "start", "bk", "--json", cwd=repo)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    assert set(info) == {"run_id", "pid", "run_dir"}
    run = info["run_id"]
    paths = BakeoffRunPaths(Path(info["run_dir"]))
    assert run.startswith("bk/") and paths.dir.parent == bakeoff.runs_dir
    final = wait_done(paths)
    assert final.termination_reason == "finished", final.message
    assert statuses(paths) == {
        "t0/solver/1": "passed",
        "t0/breaker/1": "error",
        "t1/solver/1": "passed",
        "t1/breaker/1": "error",
    }
    one_line_error(expd("bakeoff", "resume", run, cwd=repo))

    replayed = expd(
        "bakeoff",
        "replay",
        run,
        "--task",
        "t1",
        "--variant",
        "breaker",
        "--as",
        "solver",
        "--json",
        cwd=repo,
    )
    assert replayed.returncode == 0, replayed.stderr
    answer = json.loads(replayed.stdout)
    assert answer["run_id"] == run and answer["relaunched"] is True
    assert answer["attempt"] == "t1/solver/2" and answer["request_id"]
    wait_done(paths)
    record = newest(paths)["t1/solver/2"]
    assert (record.status, record.replay_of) == ("passed", "t1/breaker/1")


def test_start_attach_off_a_terminal_follows_to_the_end(tmp_path: Path) -> None:
    bakeoff = make_bakeoff_repo(
        tmp_path / "repo", tasks=2, variants={"solver": "solver", "half": "half"}
    )
    attached = expd("bakeoff", "start", "bk", "--attach", cwd=bakeoff.repo, timeout=120)
    assert attached.returncode == 0, attached.stderr + attached.stdout
    out = attached.stdout
    assert out.startswith("started bakeoff run bk/")
    assert "  matrix   2 tasks × 2 variants × 1 attempt = 4 attempts, 2 at once" in out
    assert "watch:   expd attach bk/" in out and "--watch" in out
    done = sorted(
        line.split("  score")[0].split("] ", 1)[1] for line in out.splitlines() if " · " in line
    )
    assert [d.split()[0] for d in done] == ["failed", "passed", "passed", "passed"]
    assert "t1 · half #1" in done[0]
    summary = [
        line.split() for line in out.splitlines() if line.startswith("  ") and " done " in line
    ]
    rows = {words[0]: " ".join(words[1:6]) for words in summary}
    assert rows == {"solver": "2/2 done 2 passed (100%)", "half": "2/2 done 1 passed (50%)"}
    assert out.rstrip().splitlines()[-1].startswith("report: expd bakeoff report bk/")
