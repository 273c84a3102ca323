"""The home screen's new-program dialog under App.run_test(): by hand, and drafted by a scripted
`command` agent through the real CLI subprocess (sandbox, validation), then accepted and started,
or discarded."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from shared import drafts
from shared.paths import RepoPaths
from tests.hostile import survivors
from tests.repos import make_repo, wait_finished
from tests.test_draft import drafter
from tests.test_tui_home import RecordingApp, home
from tests.tui_util import until
from tui.screens.home import HomeScreen
from tui.screens.new_program import NewProgramScreen

SLOW = 60.0  # a drafting subprocess and ten measurements on a loaded machine


async def open_dialog(app: RecordingApp, pilot) -> NewProgramScreen:  # type: ignore[no-untyped-def]
    await until(pilot, lambda: home(app).loaded)
    await pilot.press("i")
    await until(pilot, lambda: isinstance(app.screen, NewProgramScreen))
    screen = app.screen
    assert isinstance(screen, NewProgramScreen)
    return screen


async def fill(pilot, screen: NewProgramScreen, *, draft: bool, **fields: str) -> None:  # type: ignore[no-untyped-def]
    """Type into the form; then let the layout settle, as a person would before clicking."""
    for key, value in fields.items():
        if key == "direction":
            screen.query_one("#np-direction", Select).value = value
        elif key == "agent":
            screen.query_one("#np-agent", Select).value = value
        else:
            screen.query_one(f"#np-{key}", Input).value = value
    screen.query_one("#np-draft", Checkbox).value = draft
    await pilot.pause()


def text(screen: NewProgramScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_a_drafted_program_is_shown_validated_accepted_and_started(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    app = RecordingApp(repo)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_dialog(app, pilot)
        await fill(pilot, screen, draft=True, name="speed", agent="command", command=drafter())
        screen.query_one("#np-create", Button).press()
        await pilot.pause()
        assert screen.query_one("#np-busy").display
        await until(pilot, lambda: screen.query_one("#np-verdict").display, SLOW, "the verdict")
        assert "── measure.sh" in text(screen, "#np-files-text")
        verdict = text(screen, "#np-verdict")
        assert verdict.startswith("validated: usable: CV 0.0%") and "CV 0.00% over 10" in verdict
        assert screen.query_one("#np-accept-start", Button).display
        assert not screen.query_one("#np-keep", Button).display
        screen.query_one("#np-accept-start", Button).press()
        await pilot.pause()
        await until(pilot, lambda: app.opened, SLOW, "the run to start and open")
    program = RepoPaths(repo).program("speed")
    assert drafts.read_mark(program) is None  # accepted: an ordinary program
    run = app.opened[0]
    assert run.program == "speed"
    assert wait_finished(run.paths).phase == "complete"


async def test_a_failed_draft_is_shown_with_its_reason_and_discarded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    app = RecordingApp(repo)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_dialog(app, pilot)
        broken = drafter(measure="exit 3\n")
        await fill(pilot, screen, draft=True, name="speed", agent="command", command=broken)
        screen.query_one("#np-create", Button).press()
        await pilot.pause()
        await until(pilot, lambda: screen.query_one("#np-verdict").display, SLOW, "the verdict")
        assert text(screen, "#np-verdict").startswith("failed validation: measurement 1 of 10")
        assert not screen.query_one("#np-accept", Button).display
        assert RepoPaths(repo).program("speed").dir.is_dir()  # kept, marked, until decided
        screen.query_one("#np-discard", Button).press()
        await pilot.pause()
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), SLOW, "the dialog to close")
    assert not RepoPaths(repo).program("speed").dir.exists()
    assert app.opened == []


async def test_a_malformed_draft_and_a_plain_program(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    app = RecordingApp(repo)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_dialog(app, pilot)
        await fill(
            pilot, screen, draft=True, name="speed", agent="command", command=drafter(measure=None)
        )
        screen.query_one("#np-create", Button).press()
        await pilot.pause()
        error = screen.query_one("#np-error", Label)
        await until(pilot, lambda: "malformed" in str(error.render()), SLOW, "the error")
        assert "measure.sh: missing" in str(error.render())
        assert screen.query_one("#np-form").display  # back to the form, nothing written
        assert not RepoPaths(repo).program("speed").dir.exists()

        await fill(pilot, screen, draft=False, name="plain", metric="ms")
        screen.query_one("#np-create", Button).press()
        await pilot.pause()
        assert "a metric and a direction are needed" in str(error.render())
        await fill(
            pilot, screen, draft=False, name="plain", metric="ms", direction="lower", measure="true"
        )
        screen.query_one("#np-create", Button).press()
        await pilot.pause()
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), SLOW, "the dialog to close")
        await until(pilot, lambda: "plain" in home(app).programs, SLOW, "the listing")
    assert "true" in RepoPaths(repo).program("plain").measure_sh.read_text()


async def test_escape_while_drafting_ends_the_cli_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    mark = uuid.uuid4().hex[:12]
    monkeypatch.setenv("HOSTILE_MARK", mark)  # the CLI's environment, and the agent's
    app = RecordingApp(repo)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_dialog(app, pilot)
        slow = drafter(before='bash -c "exec -a hostile-drafter-$HOSTILE_MARK sleep 120"')
        await fill(pilot, screen, draft=True, name="speed", agent="command", command=slow)
        screen.query_one("#np-create", Button).press()
        await pilot.pause()
        await until(pilot, lambda: survivors(mark), SLOW, "the drafting agent to run")
        proc = screen.proc
        assert proc is not None
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), SLOW, "the dialog to close")
        await until(pilot, lambda: proc.poll() is not None, SLOW, "the CLI to end")
    assert proc.returncode != 0
    assert survivors(mark) == [], "the drafting agent outlived the CLI"
    assert not RepoPaths(repo).program("speed").dir.exists()
