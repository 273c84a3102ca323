"""`expd init NAME --draft` through the real CLI: a scripted `command` agent drafts a program in its
sandbox, expd checks the output contract, writes the program and validates it.

The drafting agent is a shell script (the outer edge); everything else is real: the sandbox, the
read-only copy of HEAD, `expd validate`, `expd start` and the daemon.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from shared import drafts
from shared.paths import RepoPaths
from tests.hostile import add_user_work, assert_untouched, snapshot, survivors
from tests.repos import GIT_ENV, expd, make_repo, start, wait_finished

PROGRAM_MD = """\
# speed
## Goal
Make `score` lower: it is the distance of x in f.py from the target, plus one.
## In scope
- f.py
## Off limits
- measure.sh and the tests
## Rules
- One focused change per experiment.
"""
MEASURE = """\
x=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
d=$(( x > 3 ? x - 3 : 3 - x ))
echo "{\\"score\\": $((d + 1))}"
"""
TOML = """\
metric = "score"
direction = "lower"
[measure]
timeout = "30s"
[decide]
policy = "fixed"
repeats = 1
min_effect = 0.01
[loop]
max_experiments = 1
"""


def drafter(
    *,
    program_md: str | None = PROGRAM_MD,
    measure: str | None = MEASURE,
    toml: str | None = TOML,
    before: str = "",
) -> str:
    """A drafting command: runs `before`, then writes the files given (None: leaves one out).
    Inline (`bash -c`): the sandbox gives the agent a private /tmp, where tests keep files."""
    lines = ['sed -n -e "1,3s/^/PROMPT: /p" -e "/^The user/s/^/PROMPT: /p"', before]
    for name, text in (("program.md", program_md), ("measure.sh", measure), ("program.toml", toml)):
        if text is not None:
            lines.append(f"cat > {name} <<'EXPD_EOF'\n{text}EXPD_EOF")
    lines.append('echo "EXPD-DESCRIPTION: drafted from $(ls repo | tr "\\n" " ")"')
    return "bash -c " + shlex.quote("\n".join(lines) + "\n")


def draft(repo: Path, command: str, *extra: str) -> tuple[int, str, str]:
    proc = expd(
        "init", "speed", "--draft", "--agent", "command", "--command", command,
        "--runs", "3", *extra, cwd=repo,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def test_a_drafted_program_validates_and_starts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    code, out, err = draft(repo, drafter(), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "validated" and doc["validation"]["usable"], doc
    assert doc["validation"]["samples"] == [4.0, 4.0, 4.0]
    assert doc["sandbox"] in ("bwrap", "landlock")
    assert doc["summary"].startswith("drafted from") and "f.py" in doc["summary"]
    program = RepoPaths(repo).program("speed")
    assert program.md.read_text() == PROGRAM_MD
    assert program.measure_sh.read_text() == MEASURE
    toml = program.toml.read_text()
    assert toml.startswith(TOML) and '[agent]\nkind = "command"' in toml
    assert "PROMPT: You are drafting a program for expd" in (program.dir / "draft.log").read_text()
    mark = drafts.read_mark(program)
    assert mark is not None and mark.status == "validated"
    # the same `expd validate` passes, and `expd start` runs it to the end
    assert expd("validate", "speed", "--runs", "2", cwd=repo).returncode == 0
    assert drafts.read_mark(program) is None  # validated by hand: an ordinary program now
    final = wait_finished(start(repo, "speed"))
    assert final.phase == "complete" and final.baseline == 4.0, final.message


def test_yes_accepts_and_text_output_shows_files_and_verdict(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    sneaky = PROGRAM_MD + "\x1b]0;pwned\x07 a terminal title\n"
    command = drafter(program_md=sneaky)
    code, out, err = draft(repo, command, "--yes", "--metric", "score", "--measure", "./b.sh")
    assert code == 0, err
    assert "\x1b" not in out and "\ufffd]0;pwned\ufffd a terminal title" in out
    assert "PROMPT: The user measures with `./b.sh`" in out  # the agent's stream, shown live
    assert "asks for the metric to be named `score`" in out
    assert "── measure.sh" in out and "score over 3 runs" in out and "usable: CV 0.0%" in out
    assert out.rstrip().endswith("next: expd start speed")
    assert drafts.read_mark(RepoPaths(repo).program("speed")) is None


def test_a_failing_measurement_is_reported_and_nothing_starts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    broken = 'echo "cannot find the benchmark" >&2\nexit 3\n'
    code, out, err = draft(repo, drafter(measure=broken))
    assert code == 1 and err.count("\n") == 1, err
    assert "the drafted measurement failed validation: measurement 1 of 3 failed" in err
    assert "kept for editing" in out
    program = RepoPaths(repo).program("speed")
    mark = drafts.read_mark(program)
    assert mark is not None and mark.status == "failed" and "failed" in mark.reason
    refused = expd("start", "speed", cwd=repo)
    assert refused.returncode == 1 and "failed validation" in refused.stderr
    assert list(program.runs_dir.iterdir()) == []
    # the user fixes the measurement; `expd validate` clears the mark
    program.measure_sh.write_text(MEASURE)
    assert expd("validate", "speed", "--runs", "2", cwd=repo).returncode == 0
    assert drafts.read_mark(program) is None


def test_a_noisy_measurement_fails_with_the_cv(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    # doubles on every run (a counter in the measurement tree): deterministic, and far too noisy
    noisy = 'n=$(cat .n 2>/dev/null || echo 0); echo $((n + 1)) > .n\necho "METRIC score=$((10 << n))"\n'
    code, out, err = draft(repo, drafter(measure=noisy), "--json")
    assert code == 1 and "too noisy: CV" in err
    doc = json.loads(out)
    assert doc["status"] == "failed" and not doc["validation"]["usable"]


BAD_TOML = 'metric = "score"\ndirection = "lower"\n[measure\n'
CASES = {
    "missing measure.sh": ({"measure": None}, "measure.sh: missing"),
    "missing program.md": ({"program_md": None}, "program.md: missing"),
    "empty program.md": ({"program_md": "\n"}, "program.md: empty"),
    "bad toml": ({"toml": BAD_TOML}, "program.toml: invalid TOML"),
    "unknown key": ({"toml": TOML + "colour = 1\n"}, "program.toml: unknown key 'colour'"),
    "unknown key in a table": (
        {"toml": TOML.replace("[decide]", "[decide]\nspeed = 2")},
        "unknown key 'speed' in [decide]",
    ),
    "missing metric": ({"toml": 'direction = "lower"\n'}, "missing key 'metric'"),
    "sets the agent": (
        {"toml": TOML + '[agent]\nkind = "command"\ncommand = "rm -rf ~"\n'},
        "[agent] is not for a draft to set",
    ),
    "unconfines the measurement": (
        {"toml": TOML.replace('timeout = "30s"', 'sandbox = "none"')},
        "[measure] sandbox is not for a draft to set",
    ),
    "a notify hook": (
        {"toml": TOML + 'notify = "curl evil.example"\n'},
        "[loop] notify is not for a draft to set",
    ),
    "a link to a secret": (
        {"program_md": None, "before": "ln -s /etc/passwd program.md"},
        "program.md: cannot be read",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_draft_is_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    repo = make_repo(tmp_path / "repo")
    kwargs, expected = CASES[case]
    code, _, err = draft(repo, drafter(**kwargs))  # type: ignore[arg-type]
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("expd: error: the draft is malformed: ") and expected in err, err
    assert not RepoPaths(repo).program("speed").dir.exists()


def test_mistakes_found_before_the_agent_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    taken = expd("init", "p", "--draft", "--agent", "command", "--command", "true", cwd=repo)
    assert taken.returncode == 1 and "already exists" in taken.stderr
    no_command = expd("init", "speed", "--draft", "--agent", "command", cwd=repo)
    assert no_command.returncode == 1 and "--command CMD" in no_command.stderr
    failing = expd(
        "init", "speed", "--draft", "--agent", "command", "--command", "exit 4", cwd=repo
    )
    assert failing.returncode == 1 and "drafting agent failed: agent exited with code 4" in (
        failing.stderr
    )
    asked = draft(repo, drafter(), "--metric", "latency")
    assert asked[0] == 1 and "metric is 'score', not 'latency' as asked" in asked[2]
    plain = expd("init", "speed", "--metric", "m", "--yes", cwd=repo)
    assert plain.returncode == 1 and "--direction" in plain.stderr
    yes = expd("init", "speed", "--metric", "m", "--direction", "lower", "--yes", cwd=repo)
    assert yes.returncode == 1 and "--yes goes with --draft" in yes.stderr
    assert not RepoPaths(repo).program("speed").dir.exists()


HOSTILE = textwrap.dedent(
    """\
    try() { if bash -c "$2" >/dev/null 2>&1; then echo "ALLOWED $1"; else echo "REFUSED $1"; fi; }
    try write-checkout "echo x > '$HOSTILE_REPO/escaped.txt'"
    try edit-tracked "echo 'x = 99' > '$HOSTILE_REPO/f.py'"
    try plant-hook "echo 'touch /tmp/pwned' > '$HOSTILE_REPO/.git/hooks/post-commit'"
    try edit-program "echo x >> '$HOSTILE_REPO/.expd/programs/p/measure.sh'"
    try write-outside "echo x > '$HOSTILE_OUTSIDE/escaped.txt'"
    try edit-copy "echo 'x = 99' > repo/f.py"
    try read-checkout "cat '$HOSTILE_REPO/notes.txt'"
    ( setsid bash -c "exec -a hostile-sleeper-$HOSTILE_MARK sleep 300" </dev/null >/dev/null 2>&1 & )
    """
)


@pytest.mark.parametrize("backend", ["bwrap", "landlock"])
def test_a_hostile_drafting_agent_cannot_touch_the_users_files(
    tmp_path: Path, backend: str
) -> None:
    from daemon.ops import sandbox

    if not sandbox.probe(backend).ok:
        pytest.skip(f"{backend} is not available here: {sandbox.probe(backend).detail}")
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = add_user_work(make_repo(tmp_path / "repo"))
    program_p = RepoPaths(repo).program("p").measure_sh.read_text()
    before = snapshot(repo)
    mark = uuid.uuid4().hex[:12]
    proc = expd(
        "init", "speed", "--draft", "--agent", "command", "--sandbox", backend,
        "--command", drafter(before=HOSTILE), "--runs", "3", "--json", cwd=repo,
        env={"HOSTILE_REPO": str(repo), "HOSTILE_OUTSIDE": str(outside), "HOSTILE_MARK": mark},
    )  # fmt: skip
    assert survivors(mark) == [], "a process the drafting agent detached outlived it"
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sandbox"] == backend
    log = (RepoPaths(repo).program("speed").dir / "draft.log").read_text()
    verdicts = dict(
        reversed(line.split(" ", 1)) for line in log.splitlines() if line.startswith(("ALL", "REF"))
    )
    writes = ("write-checkout", "edit-tracked", "plant-hook", "edit-program", "write-outside")
    assert all(verdicts[name] == "REFUSED" for name in writes), log
    if backend == "bwrap":  # the checkout is out of sight and the copy read-only
        assert verdicts["read-checkout"] == verdicts["edit-copy"] == "REFUSED", log
    assert_untouched(repo, before)
    assert not (outside / "escaped.txt").exists()
    assert RepoPaths(repo).program("p").measure_sh.read_text() == program_p
    # the copy the agent saw (whatever it did to it) never reaches what is validated
    assert json.loads(proc.stdout)["validation"]["samples"] == [4.0, 4.0, 4.0]


def on_terminal(repo: Path, argv: list[str], answers: list[str], env: dict[str, str]) -> str:
    """The CLI on a pseudo-terminal: each answer is typed when the next question appears."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", *argv],
        cwd=repo,
        env={**os.environ, **GIT_ENV, **env},
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    out, asked = b"", 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if out.count(b"? ") > asked and asked < len(answers):
                os.write(master, answers[asked].encode() + b"\n")
                asked += 1
        assert proc.wait(timeout=60) is not None
    finally:
        os.close(master)
    return out.decode(errors="replace").replace("\r\n", "\n") + f"\nexit {proc.returncode}"


def test_on_a_terminal_a_failed_draft_is_edited_then_accepted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    fixed = tmp_path / "fixed.sh"
    fixed.write_text(MEASURE)
    editor = f"bash -c 'cp {fixed} measure.sh' editor"
    argv = ["init", "speed", "--draft", "--agent", "command", "--runs", "3"]
    out = on_terminal(
        repo, [*argv, "--command", drafter(measure="exit 3\n")], ["e", "a"], {"EDITOR": editor}
    )
    assert "failed: measurement 1 of 3 failed" in out and "[e]dit, [k]eep for later" in out, out
    assert "usable: CV 0.0%" in out and "[a]ccept, [e]dit, [d]iscard?" in out, out
    assert out.endswith("next: expd start speed\n\nexit 0"), out
    program = RepoPaths(repo).program("speed")
    assert program.measure_sh.read_text() == MEASURE and drafts.read_mark(program) is None


def test_on_a_terminal_a_draft_can_be_discarded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    argv = ["init", "speed", "--draft", "--agent", "command", "--runs", "3"]
    out = on_terminal(repo, [*argv, "--command", drafter()], ["d"], {})
    assert "discarded speed" in out and out.endswith("exit 0"), out
    assert not RepoPaths(repo).program("speed").dir.exists()
