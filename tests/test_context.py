"""The context packet, built from a real run directory: contents, budget, priorities."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from daemon.service.context import Extras, build_prompt, directive
from daemon.service.packet import packet_extras
from shared import codec
from shared.errors import UserError
from shared.paths import RunPaths
from shared.programs import parse_program
from shared.schema import ProgramConfig, ResultRecord, RunManifest, RunState
from tests.repos import MEASURE_SH, make_repo, results, start, state, wait_finished

MEASURE = MEASURE_SH.replace(
    "${MEASURE_EXTRA:-true}", 'echo "diag: x=$x target=$t" >> "$EXPD_DIAGNOSTICS_FILE"'
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunPaths:
    """Six experiments: x goes 1, 2, 3 (kept), then 4 three times (discarded)."""
    repo = make_repo(tmp_path_factory.mktemp("ctx") / "repo", max_experiments=6, measure_sh=MEASURE)
    paths = start(repo)
    assert wait_finished(paths).termination_reason == "max_experiments"
    return paths


def _packet(paths: RunPaths, budget: int, **extra: str) -> str:
    manifest = codec.read(paths.run_json, RunManifest)
    config = msgspec.convert(manifest.config, ProgramConfig)
    s = state(paths)
    extras = packet_extras(paths, manifest, config, s)
    for key, value in extra.items():
        setattr(extras, key, value)
    return build_prompt(
        experiment=7,
        program_md=(Path(manifest.program_dir) / "program.md").read_text(),
        state=s,
        results=results(paths),
        patches={n: paths.patch(n) for n in range(1, 7)},
        budget=budget,
        extras=extras,
    )


def test_the_packet_holds_every_part(run: RunPaths) -> None:
    assert "diag: x=" in run.diagnostics.read_text()
    text = _packet(run, 12_000, guidance="focus on f.py", ideas="## Experiment 5 (discard)\n- a")
    for part in (
        "## Guidance from the human (takes priority)\n\nfocus on f.py",
        "Make score lower.",
        "Baseline: 4. Current best: 1 (+75.00% better than the baseline)",
        "| 6 | discard | 2 |",
        "## Ideas and notes",
        "## Kept changes",
        "- 3: x from 2 to 3 (f.py: +1 -1)",
        "### Experiment 6: x from 3 to 4",
        "+x = 4",
        "## Diagnostics from the last measurement\n\ndiag: x=",
        "EXPD-NOTES",
    ):
        assert part in text, part
    assert text.index("Guidance") < text.index("Make score lower.") < text.index("Kept changes")


@pytest.mark.parametrize("budget", [2000, 2500, 4000, 8000, 12_000])
def test_the_budget_is_respected_and_high_priority_parts_survive(
    run: RunPaths, budget: int
) -> None:
    guidance = "GUIDANCE " * 40
    text = _packet(run, budget, guidance=guidance, diagnostics="DIAG\n" * 2000)
    assert len(text) <= budget and text.count("```") % 2 == 0
    assert guidance.strip() in text
    assert "Make score lower." in text and "Current best: 1" in text
    assert "EXPD-NOTES" in text and "END-NOTES" in text
    if budget == 2000:  # low-priority parts give way first: patches and diagnostics
        assert "| 6 | discard |" in text and "## Kept changes" in text
        assert "### Experiment 6" not in text and "DIAG" not in text
    if budget >= 8000:
        assert "| 6 | discard |" in text and "### Experiment 6" in text


def test_a_huge_goal_is_trimmed_but_guidance_stays(run: RunPaths) -> None:
    s = state(run)
    text = build_prompt(
        experiment=7,
        program_md="GOAL " * 5000,
        state=s,
        results=results(run),
        patches={},
        budget=3000,
        extras=Extras(guidance="the human says hi"),
    )
    assert len(text) <= 3000
    assert "the human says hi" in text and "… (trimmed)" in text
    assert "## Recent experiments" not in text


def _state(streak: int) -> RunState:
    return RunState(direction="lower", consecutive_non_keeps=streak, baseline=4.0, best=1.0)


def test_the_directive_escalates_with_the_streak() -> None:
    assert directive(_state(2), [], 10) == ""
    assert "different kind of change" in directive(_state(3), [], 10)
    assert "change category" in directive(_state(5), [], 10)
    assert "simplify, or try something bold" in directive(_state(7), [], 10)


def test_a_plateau_is_named() -> None:
    records = [ResultRecord(experiment=0, status="baseline", metric=4.0)]
    records += [ResultRecord(experiment=1, status="keep", metric=2.0)]
    records += [ResultRecord(experiment=n, status="discard", metric=3.0) for n in range(2, 8)]
    # A keep that is not a new best (a simplification) does not end the plateau.
    records += [ResultRecord(experiment=8, status="keep", metric=2.0)]
    text = directive(_state(0), records, 100)
    assert "Plateau: no new best in the last 7 experiments" in text
    assert directive(_state(0), records[:4], 100) == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[agent]\ncontext_chars = 1999\n", "context_chars must be at least 2000"),
        ('[loop]\nnotify = "  "\n', "notify must not be empty"),
    ],
)
def test_the_new_keys_are_validated(tmp_path: Path, extra: str, message: str) -> None:
    text = 'metric = "score"\ndirection = "lower"\n' + extra
    with pytest.raises(UserError, match=message):
        parse_program(text, source=tmp_path / "program.toml")
    ok = parse_program(
        'metric = "s"\ndirection = "lower"\n[agent]\ncontext_chars = 2000\ncommand = "a"\n',
        source=tmp_path,
    )
    assert ok.agent.context_chars == 2000 and ok.loop.notify is None


def test_the_diagnostics_tail_starts_at_a_whole_line(tmp_path: Path) -> None:
    from daemon.service.packet import DIAGNOSTICS_TAIL, _tail

    path = tmp_path / "diagnostics.md"
    assert _tail(path, DIAGNOSTICS_TAIL) == ""
    path.write_text("short\n")
    assert _tail(path, DIAGNOSTICS_TAIL) == "short\n"
    path.write_text("".join(f"é line {i}\n" for i in range(1000)))
    text = _tail(path, 100)
    assert text.startswith("…é line ") and text.endswith("é line 999\n")
    assert "\ufffd" not in text and len(text.encode()) <= 101 + len("…".encode())
