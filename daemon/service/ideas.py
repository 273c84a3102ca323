"""The ideas backlog: what each agent learnt, kept in `ideas.md` and fed to the next agents.

Agents end their answer with an `EXPD-NOTES` … `END-NOTES` block; its lines are `key: text`.
Agent output is untrusted, so parsing tolerates anything: a missing end marker, unknown keys,
huge text (capped), several blocks (the last one wins).
"""

from __future__ import annotations

import re
from pathlib import Path

START, END = "EXPD-NOTES", "END-NOTES"
KEYS = ("hypothesis", "result", "avoid", "next")
MAX_VALUE = 400
MAX_LINES = 40
_KEY = re.compile(r"^\s*[-*]?\s*([A-Za-z][A-Za-z _-]{0,30}):\s*(.*)$")
_HEADER = re.compile(r"^## Experiment (\d+)")


def parse_notes(text: str) -> dict[str, str]:
    """The last notes block's known keys, each value capped; empty if there is none."""
    start = text.rfind(START)
    if start < 0:
        return {}
    body = text[start + len(START) :]
    end = body.find(END)
    if end >= 0:
        body = body[:end]
    notes: dict[str, str] = {}
    current: str | None = None
    for line in body.splitlines()[:MAX_LINES]:
        match = _KEY.match(line)
        key = match.group(1).strip().lower() if match else None
        if match and key is not None:
            current = key if key in KEYS else None
            if current is not None:
                notes[current] = _join(notes.get(current, ""), match.group(2))
        elif current is not None and line.strip():
            notes[current] = _join(notes[current], line)
    return {k: v for k in KEYS if (v := notes.get(k, "").strip())}


def _join(old: str, more: str) -> str:
    text = f"{old} {more.strip()}".strip()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def entry(experiment: int, status: str, description: str, notes: dict[str, str]) -> str:
    """One experiment's section of `ideas.md`."""
    title = description.strip().splitlines()[0][:100] if description.strip() else ""
    head = f"## Experiment {experiment} ({status})" + (f": {title}" if title else "")
    return "\n".join([head, *(f"- {k}: {v}" for k, v in notes.items())]) + "\n\n"


def record_notes(
    ideas_file: Path, log_file: Path, experiment: int, status: str, description: str
) -> bool:
    """Append the agent's notes (if it wrote any) to the backlog; True if it did."""
    try:
        notes = parse_notes(log_file.read_text(errors="replace"))
    except OSError:
        return False
    if not notes:
        return False
    with ideas_file.open("a") as f:
        f.write(entry(experiment, status, description, notes))
    return True


def recent_ideas(ideas_file: Path, budget: int) -> str:
    """The newest whole entries of the backlog that fit in `budget` characters, oldest first."""
    try:
        text = ideas_file.read_text(errors="replace")
    except OSError:
        return ""
    entries: list[str] = []
    for line in text.splitlines():
        if _HEADER.match(line) or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    chosen: list[str] = []
    used = 0
    for item in reversed(entries):
        item = item.strip()
        if not item:
            continue
        if used + len(item) + 2 > budget:
            break
        chosen.append(item)
        used += len(item) + 2
    return "\n\n".join(reversed(chosen))
