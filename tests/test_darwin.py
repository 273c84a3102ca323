"""`expd darwin`: arms ranked by outcomes on synthetic runs and bakeoff runs, the winner named only
on evidence, and `--apply` archiving the generation and rewriting the arms in place — comments
kept, rolled back when the config cannot be written."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.commands import generations as gen_cmd
from daemon.commands.arms_toml import rewrite
from shared import codec
from shared.arms import arms_of
from shared.bakeoffs.paths import BakeoffPaths
from shared.cli.main import main
from shared.darwin import Generation
from shared.darwin_stats import binom_sf, more_experiments, poisson_interval, rate_p_value
from shared.generations import next_ids, promote
from shared.locking import try_lock, unlock
from shared.paths import RepoPaths
from shared.programs import load_program
from shared.schema import ProgramConfig, ResultRecord
from tests import bakeoff_fakes as bf
from tests.fake_runs import git_repo, make_run, result
from tests.repos import expd

Capsys = pytest.CaptureFixture[str]

PROGRAM = """metric = "score"
direction = "lower"

[agent]
kind = "command"
command = "./agent.sh"  # every arm starts from this

# good: careful, and it shows
[[arms]]
id = "good"
command = "./good.sh"  # the careful script
prompt_addendum = "Run the tests first."

# mediocre: fast and loose
[[arms]]
id = "mediocre"
command = "./mediocre.sh"

# useless: the default agent, kept as a control
[[arms]]
id = "useless"

# share experiments by turns
[arms_policy]
allocation = "round_robin"
"""

AFTER_APPLY = """metric = "score"
direction = "lower"

[agent]
kind = "command"
command = "./good.sh"  # every arm starts from this

# good: careful, and it shows
[[arms]]
id = "good"
command = "./good.sh"  # the careful script
prompt_addendum = "Run the tests first."

# mediocre: fast and loose
[[arms]]
id = "mediocre"
command = "./mediocre.sh"

# useless: the default agent, kept as a control
[[arms]]
id = "useless"
command = "./agent.sh"

# share experiments by turns
[arms_policy]
allocation = "round_robin"
"""

CLEAR = {"good": (20, 50), "mediocre": (3, 50), "useless": (0, 50)}
"""Per arm: keeps, experiments."""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


def records(outcomes: dict[str, tuple[int, int]], cost: float = 0.1) -> list[ResultRecord]:
    """A baseline and the arms' experiments interleaved, each keep 1 % better than the best."""
    out = [result(0, "baseline", 100.0)]
    best, n = 100.0, 1
    left = {arm: list(counts) for arm, counts in outcomes.items()}
    while any(e for _, e in left.values()):
        for arm, counts in left.items():
            keeps, experiments = counts
            if not experiments:
                continue
            keep = keeps > 0
            best = best * 0.99 if keep else best
            rec = result(n, "keep" if keep else "discard", best if keep else best * 1.05)
            rec.arm, rec.cost_usd = arm, cost
            counts[0], counts[1] = keeps - keep, experiments - 1
            out.append(rec)
            n += 1
    return out


def program(
    repo: Path,
    outcomes: dict[str, tuple[int, int]],
    *,
    text: str = PROGRAM,
    stamp: str = "20260101-120000",
    cost: float = 0.1,
) -> Path:
    run = make_run(repo, "prog", stamp, phase="complete")
    RepoPaths(repo).program("prog").toml.write_text(text)
    run.add_results(*records(outcomes, cost))
    return RepoPaths(repo).program("prog").toml


def darwin(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["darwin", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def darwin_json(capsys: Capsys, *argv: str) -> dict[str, Any]:
    code, out, err = darwin(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def archives(owner_dir: Path) -> list[Path]:
    folder = owner_dir / "generations"
    return sorted(folder.iterdir()) if folder.is_dir() else []


# --------------------------------------------------------------------------- statistics


def test_exact_intervals_and_tests() -> None:
    assert poisson_interval(0)[1] == pytest.approx(-math.log(0.025), rel=1e-6)
    low, high = poisson_interval(10)
    assert (low, high) == (pytest.approx(4.7954, abs=1e-3), pytest.approx(18.3904, abs=1e-3))
    assert binom_sf(3, 3, 0.5) == pytest.approx(0.125)
    assert binom_sf(0, 5, 0.3) == 1.0 and binom_sf(6, 5, 0.3) == 0.0
    # Equal exposures: the conditional test is the one-sided sign test of the keeps.
    assert rate_p_value(9, 1, 5.0, 5.0) == pytest.approx(11 / 1024)
    # More exposure explains more keeps: 20 keeps over 4× the dollars is no evidence.
    assert rate_p_value(20, 5, 40.0, 10.0) > 0.4
    needed = more_experiments(6, 3, 30.0, 30.0, 60)
    assert needed is not None and needed > 0
    assert rate_p_value(round(6 * (60 + needed) / 60), round(3 * (60 + needed) / 60), 1, 1) < 0.05
    assert more_experiments(5, 5, 10.0, 10.0, 40) is None


# --------------------------------------------------------------------------- the plan


def test_a_clearly_better_arm_is_named_with_the_json_shape(repo: Path, capsys: Capsys) -> None:
    program(repo, CLEAR)
    plan = darwin_json(capsys, "prog")
    assert set(plan) >= {"ranking", "winner", "comparison", "current_arms", "next_arms", "source"}
    assert plan["source"] == {"kind": "program", "name": "prog", "runs": ["prog/20260101-120000"]}
    assert plan["unit"] == "dollar"
    assert [r["id"] for r in plan["ranking"]] == ["good", "mediocre", "useless"]
    top = plan["ranking"][0]
    assert (top["experiments"], top["keeps"], top["cost_usd"]) == (50, 20, pytest.approx(5.0))
    assert top["rate"] == pytest.approx(4.0)
    assert top["rate_interval"][0] < 4.0 < top["rate_interval"][1]
    assert top["keep_interval"][0] < 0.4 < top["keep_interval"][1]
    assert top["improvement_pct"] == pytest.approx(20.0, rel=0.01)
    winner = plan["winner"]
    assert winner["arm"] == "good" and winner["significant"] is True
    assert "p = " in winner["reason"] and winner["forced"] is False
    c = plan["comparison"]
    assert (c["a"], c["b"], c["keeps_a"], c["keeps_b"]) == ("good", "mediocre", 20, 3)
    assert c["p_value"] < 0.05
    assert plan["current_arms"] == ["good", "mediocre", "useless"]
    assert plan["next_arms"] == ["good", "mediocre", "useless"]
    code, out, _ = darwin(capsys, "prog")
    assert code == 0
    assert "winner: good — good earns more keeps per dollar than mediocre" in out
    assert "next generation: good (promoted to [agent]), mediocre, useless" in out


def test_two_equal_arms_have_no_winner_and_apply_refuses(repo: Path, capsys: Capsys) -> None:
    program(repo, {"good": (10, 40), "mediocre": (10, 40)})
    plan = darwin_json(capsys, "prog")
    assert plan["winner"]["arm"] is None and plan["next_arms"] is None
    assert plan["winner"]["reason"].startswith("no clear winner: ")
    code, _, err = darwin(capsys, "prog", "--apply")
    assert code == 1 and "no winner to promote; pass --winner ARM" in err
    assert len(err.strip().splitlines()) == 1
    assert archives(RepoPaths(repo).program("prog").dir) == []


def test_a_small_lead_says_how_many_more_experiments(repo: Path, capsys: Capsys) -> None:
    program(repo, {"good": (6, 30), "mediocre": (3, 30)})
    plan = darwin_json(capsys, "prog")
    assert plan["winner"]["arm"] is None
    more = plan["comparison"]["more_experiments"]
    assert more > 0 and f"about {more} more experiments" in plan["winner"]["reason"]


def test_ranked_by_outcomes_not_by_how_often_picked(repo: Path, capsys: Capsys) -> None:
    """`mediocre` ran five times as often and made more keeps, at a far lower rate."""
    program(repo, {"good": (8, 20), "mediocre": (10, 100)}, cost=0.0)
    plan = darwin_json(capsys, "prog")
    assert plan["unit"] == "experiment"
    assert [r["id"] for r in plan["ranking"]] == ["good", "mediocre", "useless"]
    assert plan["winner"]["arm"] == "good"
    assert plan["ranking"][2]["rate"] is None


# --------------------------------------------------------------------------- --apply


def test_apply_archives_and_keeps_the_comments(repo: Path, capsys: Capsys) -> None:
    toml = program(repo, CLEAR)
    code, out, err = darwin(capsys, "prog", "--apply")
    assert code == 0, err
    assert toml.read_text() == AFTER_APPLY
    (archive,) = archives(toml.parent)
    assert f"applied: generation 1 archived in {archive}" in out
    g = codec.read(archive, Generation)
    assert (g.number, g.winner, g.significant, g.forced) == (1, "good", True, False)
    assert g.next_ids == ["good", "mediocre", "useless"]
    assert g.current_arms[2] == {"id": "useless"}
    assert g.next_arms[2] == {"id": "useless", "command": "./agent.sh"}
    assert g.current_agent["command"] == "./agent.sh" and g.next_agent["command"] == "./good.sh"
    assert g.evidence is not None and g.evidence["p_value"] < 0.05
    assert [a.id for a in g.outcomes[0].arms] == ["good", "mediocre", "useless"]
    # Every surviving arm runs what it ran before; the program runs the winner's setup.
    config = load_program(RepoPaths(repo).program("prog"))
    commands = {a.id: a.agent.command for a in arms_of(config)}
    assert commands == {"good": "./good.sh", "mediocre": "./mediocre.sh", "useless": "./agent.sh"}
    assert config.agent.command == "./good.sh"
    assert not [p for p in toml.parent.iterdir() if p.name.startswith(".")]


def test_kept_challengers_and_dropped_ones(repo: Path, capsys: Capsys) -> None:
    toml = program(repo, CLEAR)
    plan = darwin_json(capsys, "prog", "--arm", "useless", "--apply")
    assert plan["next_arms"] == ["good", "useless"]
    (archive,) = archives(toml.parent)
    assert plan["applied"] == {"generation": 1, "archive": str(archive), "config": str(toml)}
    text = toml.read_text()
    assert "mediocre" not in text
    assert '# useless: the default agent, kept as a control\n[[arms]]\nid = "useless"' in text
    assert '# good: careful, and it shows\n[[arms]]\nid = "good"' in text
    assert "# share experiments by turns\n[arms_policy]" in text


def test_arm_flags_are_never_split_on_commas(repo: Path, capsys: Capsys) -> None:
    program(repo, CLEAR)
    code, _, err = darwin(capsys, "prog", "--arm", "good,useless")
    assert code == 1
    assert err.strip() == (
        "expd: error: --arm: unknown arm 'good,useless' (declared: good, mediocre, useless)"
    )


def test_winner_override_and_the_winner_alone(repo: Path, capsys: Capsys) -> None:
    toml = program(repo, {"good": (10, 40), "mediocre": (10, 40)})
    code, _, err = darwin(capsys, "prog", "--winner", "mediocre", "--arm", "mediocre", "--apply")
    assert code == 0, err
    text = toml.read_text()
    assert "[[arms]]" not in text and 'command = "./mediocre.sh"  # every arm starts' in text
    config = load_program(RepoPaths(repo).program("prog"))
    assert config.arms == [] and config.agent.command == "./mediocre.sh"
    (archive,) = archives(toml.parent)
    g = codec.read(archive, Generation)
    assert g.forced and not g.significant and g.reason.startswith("chosen with --winner")
    assert g.next_ids == ["mediocre"] and g.next_arms == []


def test_the_winner_alone_cannot_drop_its_addendum(repo: Path, capsys: Capsys) -> None:
    toml = program(repo, CLEAR)
    code, _, err = darwin(capsys, "prog", "--arm", "good", "--apply")
    assert code == 1 and "prompt_addendum" in err and len(err.strip().splitlines()) == 1
    assert toml.read_text() == PROGRAM


def test_a_failed_config_write_leaves_no_archive(
    repo: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = program(repo, CLEAR)

    def refuse(staged: Path, target: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gen_cmd, "_install", refuse)
    code, _, err = darwin(capsys, "prog", "--apply")
    assert code == 1
    assert err.strip() == (
        f"expd: error: could not write {toml} (Permission denied): nothing changed, "
        "no generation archived"
    )
    assert toml.read_text() == PROGRAM
    assert archives(toml.parent) == []
    assert not [p for p in toml.parent.iterdir() if p.name.startswith(".program")]


def test_a_rewrite_the_loader_rejects_is_rolled_back(
    repo: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = program(repo, CLEAR)
    real = gen_cmd.load_program

    def strict(paths: Any) -> Any:
        assert paths.toml.read_text() == AFTER_APPLY  # the staged file, before the rename
        raise gen_cmd.UserError(f"{paths.toml}: a check failed")

    monkeypatch.setattr(gen_cmd, "load_program", strict)
    code, _, err = darwin(capsys, "prog", "--apply")
    assert code == 1 and f"would not load: {toml}: a check failed" in err
    assert toml.read_text() == PROGRAM and archives(toml.parent) == []
    monkeypatch.setattr(gen_cmd, "load_program", real)


def test_two_applies_in_the_same_second_make_two_archives(
    repo: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = program(repo, CLEAR)
    monkeypatch.setattr(gen_cmd, "time", types.SimpleNamespace(time=lambda: 1_800_000_000.25))
    tokens: Iterator[str] = iter(["0badc0de", "0badc0de", "feedf00d"])
    monkeypatch.setattr(gen_cmd, "_token", lambda: next(tokens))
    assert darwin(capsys, "prog", "--apply")[0] == 0
    assert darwin(capsys, "prog", "--apply")[0] == 0
    first, second = archives(toml.parent)
    assert first.name == "20270115T080000.250000Z-0badc0de.json"
    assert second.name == "20270115T080000.250000Z-feedf00d.json"
    assert [codec.read(p, Generation).number for p in (first, second)] == [1, 2]
    assert toml.read_text() == AFTER_APPLY


def test_a_program_with_an_active_run_is_left_alone(repo: Path, capsys: Capsys) -> None:
    toml = program(repo, CLEAR)
    fd = try_lock(RepoPaths(repo).program("prog").active_lock)
    assert fd is not None
    try:
        code, _, err = darwin(capsys, "prog", "--apply")
    finally:
        unlock(fd)
    assert code == 1 and "has an active run" in err
    assert toml.read_text() == PROGRAM and archives(toml.parent) == []


def test_runs_selects_the_runs(repo: Path, capsys: Capsys) -> None:
    program(repo, {"good": (1, 10), "mediocre": (1, 10)})
    run = make_run(repo, "prog", "20260102-120000", phase="complete")
    run.add_results(*records({"good": (9, 10), "mediocre": (0, 10)}))
    both = darwin_json(capsys, "prog")
    assert both["source"]["runs"] == ["prog/20260101-120000", "prog/20260102-120000"]
    assert both["ranking"][0]["keeps"] == 10
    one = darwin_json(capsys, "prog", "--runs", "prog/20260101")
    assert one["source"]["runs"] == ["prog/20260101-120000"] and one["winner"]["arm"] is None


EDGES = {
    "root": 'metric = "s"\ndirection = "lower"\n# a: first\n[[arms]]\nid = "a"\ncommand = "./a"\n'
    '[[arms]]  # b\nid = "b"\ncommand = "./b"\nmodel = "x"\n\n# the end\n',
    "no_newline": 'metric = "s"\ndirection = "lower"\n[agent]\ncommand = "z"  # z\n[[arms]]\n'
    'id = "a"\n[[arms]]\nid = "b"\ncommand = "y"',
    "sub_tables": 'metric = "s"\ndirection = "lower"\n[agent]\ncommand = "z"\n[agent.env]\n'
    'K = "1"  # one\n\n# a\n[[arms]]\nid = "a"\nenv = { K = "2" }\n# b\n[[arms]]\nid = "b"\n'
    '[arms.env]\nK = "3"\n# after b\n[arms_policy]\nmin_share = 0.2\n',
}


@pytest.mark.parametrize("winner", ["a", "b"])
@pytest.mark.parametrize("text", EDGES.values(), ids=EDGES.keys())
def test_rewrites_keep_the_data_and_every_comment(text: str, winner: str) -> None:
    raw = tomllib.loads(text)
    ids = next_ids(["a", "b"], winner, None)
    promotion = promote(raw.get("agent", {}), raw["arms"], ids)
    new = rewrite(text, "arms", promotion, before_agent=raw.get("agent", {}))
    assert tomllib.loads(new) == gen_cmd.expected_config(raw, "arms", promotion)
    assert sorted(re.findall("#.*", new)) == sorted(re.findall("#.*", text))
    if winner == "a" and promotion.agent == raw.get("agent", {}):
        assert new == text  # nothing to move, nothing to promote: not a byte changes
    # Each arm runs what it ran, but for an unset key it now inherits (and the plan says so).
    inherits = {m for note in promotion.notes for m in re.findall(r"arm (\S+) had no (\S+):", note)}

    def agents(config: dict[str, Any]) -> dict[tuple[str, str], Any]:
        arms = arms_of(msgspec.convert(config, ProgramConfig))
        pairs = ((a.id, codec.to_builtins(a.agent)) for a in arms)
        return {(i, k): v for i, agent in pairs for k, v in agent.items() if (i, k) not in inherits}

    assert agents(tomllib.loads(new)) == agents(raw)
    assert [a["id"] for a in tomllib.loads(new)["arms"]] == ids
    assert ("a", "model") in inherits if EDGES["root"] == text and winner == "b" else True


def test_an_inline_list_of_arms_is_not_rewritten(repo: Path, capsys: Capsys) -> None:
    inline = 'metric = "s"\ndirection = "lower"\narms = [{id = "a"}, {id = "b"}]\n[agent]\ncommand = "z"\n'
    toml = program(repo, {"a": (9, 10), "b": (0, 10)}, text=inline)
    code, _, err = darwin(capsys, "prog", "--apply")
    assert code == 1 and "not written as [[arms]] tables" in err
    assert toml.read_text() == inline and archives(toml.parent) == []


# --------------------------------------------------------------------------- errors


NO_ARMS = PROGRAM.split("# good")[0]
ONE_ARM = PROGRAM.split("# mediocre")[0]


@pytest.mark.parametrize(
    ("argv", "text", "outcomes", "message"),
    [
        (["nope"], PROGRAM, CLEAR, "no program named 'nope' (programs: prog)"),
        (["prog", "--winner", "best"], PROGRAM, CLEAR, "--winner: unknown arm 'best'"),
        (["prog"], NO_ARMS, {}, "program 'prog' declares 0 arm(s): darwin compares at least two"),
        (["prog"], ONE_ARM, {}, "[[arms]] needs at least two arms to compare"),
        (["prog"], PROGRAM, {}, "no outcomes: no experiment in program 'prog'"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    repo: Path, argv: list[str], text: str, outcomes: dict[str, tuple[int, int]], message: str
) -> None:
    program(repo, outcomes, text=text)
    proc = expd("darwin", *argv, cwd=repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("expd: error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


# --------------------------------------------------------------------------- bakeoffs

BAKEOFF = """attempts = 1

# the setups compared
[[variant]]
id = "a"  # the careful one
kind = "command"
command = "true"
prompt_prefix = "Be careful."

# b: the quick one
[[variant]]
id = "b"
kind = "command"
command = "false"

[[task]]
id = "t000"
prompt = "do it"
criteria = ["command:true"]
"""

BAKEOFF_AFTER = """attempts = 1

# b: the quick one
[[variant]]
id = "b"
kind = "command"
command = "false"

# the setups compared
[[variant]]
id = "a"  # the careful one
kind = "command"
command = "true"
prompt_prefix = "Be careful."

[[task]]
id = "t000"
prompt = "do it"
criteria = ["command:true"]

[agent]
kind = "command"
command = "false"
"""


def bakeoff_run(repo: Path, *, phase: str = "complete") -> Path:
    spec = bf.spec(tasks=8, variants=("a", "b"))
    paths = bf.make_run(repo, spec, phase=phase)
    for task in spec.tasks:
        bf.append(paths, bf.record(task.id, "a", "passed"), bf.record(task.id, "b", "failed"))
    toml = BakeoffPaths(repo, "bk").toml
    toml.write_text(BAKEOFF)
    return toml


def test_a_finished_bakeoff_run_is_a_source(repo: Path, capsys: Capsys) -> None:
    toml = bakeoff_run(repo)
    plan = darwin_json(capsys, "bk/")
    assert plan["source"] == {"kind": "bakeoff", "name": "bk", "runs": [f"bk/{bf.STAMP}"]}
    assert [r["variant"] for r in plan["ranking"]] == ["a", "b"]
    assert plan["winner"]["arm"] == "a" and plan["winner"]["significant"] is True
    assert plan["comparison"]["test"] == "sign" and plan["next_arms"] == ["a", "b"]
    code, _, err = darwin(capsys, "bk/", "--winner", "b", "--apply")
    assert code == 0, err
    assert toml.read_text() == BAKEOFF_AFTER
    (archive,) = archives(toml.parent)
    g = codec.read(archive, Generation)
    assert g.winner == "b" and g.forced and g.next_agent == {"kind": "command", "command": "false"}
    code, _, err = darwin(capsys, "bk/", "--arm", "c")
    assert code == 1 and "unknown variant 'c' (declared: a, b)" in err


def test_an_unfinished_bakeoff_run_is_refused(repo: Path, capsys: Capsys) -> None:
    bakeoff_run(repo, phase="running")
    code, _, err = darwin(capsys, "bk/")
    assert code == 1 and "is not finished" in err


def test_a_program_run_names_its_program(repo: Path, capsys: Capsys) -> None:
    program(repo, CLEAR)
    code, _, err = darwin(capsys, "prog/2026")
    assert code == 1 and "expd darwin prog --runs prog/20260101-120000" in err


def test_the_plan_loads_no_writer(repo: Path) -> None:
    """Without --apply, darwin is a read command: no tomlkit, no daemon code, no git binding."""
    program(repo, CLEAR)
    code = (
        "import sys; from shared.cli.main import main; main(['darwin', 'prog', '--json']); "
        "print(sorted(m for m in ('tomlkit', 'daemon', 'pygit2', 'textual') if m in sys.modules),"
        " file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stderr.strip() == "[]", proc.stderr
