"""The ideas backlog: notes blocks parsed from agent logs, kept in ideas.md, fed back."""

from __future__ import annotations

from pathlib import Path

from daemon.service.ideas import MAX_VALUE, parse_notes, recent_ideas, record_notes
from tests.repos import AGENT_SH, make_repo, start, wait_finished

BLOCK = "EXPD-NOTES\nhypothesis: h1\nresult: r1\navoid: a1\nnext: n1\nEND-NOTES\n"


def test_parses_a_well_formed_block() -> None:
    text = "chatter\n" + BLOCK + "trailing"
    assert parse_notes(text) == {"hypothesis": "h1", "result": "r1", "avoid": "a1", "next": "n1"}


def test_tolerates_garbage() -> None:
    assert parse_notes("no block at all") == {}
    assert parse_notes("EXPD-NOTES\n") == {}
    # No END: the rest of the log is the block; unknown keys and their continuations are dropped.
    text = "EXPD-NOTES\nmood: grumpy\n  still grumpy\nresult: faster\n  because of caching\n"
    assert parse_notes(text) == {"result": "faster because of caching"}
    huge = parse_notes("EXPD-NOTES\nnext: " + "y" * 100_000 + "\nEND-NOTES")
    assert len(huge["next"]) == MAX_VALUE
    # Several blocks: the last one wins.
    two = BLOCK + "EXPD-NOTES\nnext: second\nEND-NOTES\n"
    assert parse_notes(two) == {"next": "second"}
    assert parse_notes("EXPD-NOTES\n\x00\xff: ::\n- Avoid: bullets ok\nEND-NOTES") == {
        "avoid": "bullets ok"
    }


def test_appends_entries_and_feeds_back_the_newest(tmp_path: Path) -> None:
    ideas = tmp_path / "ideas.md"
    log = tmp_path / "0001.log"
    assert not record_notes(ideas, tmp_path / "missing.log", 1, "keep", "x")
    log.write_text("nothing here")
    assert not record_notes(ideas, log, 1, "keep", "x")
    assert not ideas.exists()
    for n in (1, 2, 3):
        log.write_text(f"EXPD-NOTES\nnext: idea {n} " + "z" * 200 + "\nEND-NOTES\n")
        assert record_notes(ideas, log, n, "discard", f"change {n}")
    text = ideas.read_text()
    assert "## Experiment 1 (discard): change 1" in text
    assert "- next: idea 3" in text
    assert recent_ideas(ideas, 100_000).count("## Experiment") == 3
    newest = recent_ideas(ideas, 300)
    assert "idea 3" in newest and "idea 1" not in newest
    assert recent_ideas(tmp_path / "none.md", 1000) == ""


def test_a_real_run_keeps_the_agents_notes_and_tells_the_next_agent(tmp_path: Path) -> None:
    agent = AGENT_SH + (
        'echo "EXPD-NOTES"\n'
        'echo "hypothesis: moving x from $n helps"\n'
        'echo "next: note-from-experiment-$((n + 1))"\n'
        'echo "END-NOTES"\n'
    )
    repo = make_repo(tmp_path / "repo", agent_sh=agent, max_experiments=2)
    paths = start(repo)
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments"
    ideas = paths.ideas.read_text()
    assert "## Experiment 1 (keep)" in ideas and "## Experiment 2 (keep)" in ideas
    assert "note-from-experiment-1" in ideas
    second = paths.prompt(2).read_text()
    assert "note-from-experiment-1" in second
    assert "EXPD-NOTES" in paths.prompt(1).read_text()  # the instructions ask for the block
