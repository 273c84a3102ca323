"""Private per-run copies of the agent CLIs' state folders, for a confined agent.

A confined CLI must be able to write its state folder, but never the user's real one: a writable
`~/.claude` lets an agent plant hooks that the user's next session runs. So each run gets, in its
run directory, a copy of what the CLI needs to start — credentials and settings, no history —
taken once, and the CLI is pointed at it (`CLAUDE_CONFIG_DIR`, `CODEX_HOME`, OpenCode's XDG
directories). A login refreshed inside the run stays in the copy.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

CLAUDE_FILES = (".credentials.json", "settings.json", "CLAUDE.md", "agents", "commands", "skills")
CODEX_FILES = ("auth.json", "config.toml", "AGENTS.md", "prompts")
OPENCODE_CONFIG_SKIP = ("node_modules", "package-lock.json", "bun.lock")


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def copy_once(dest: Path, source: Path, names: Sequence[str] | None = None) -> Path:
    """Copy `names` (all of `source` when None) from `source` into `dest`, unless it exists."""
    if dest.exists():
        return dest
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, mode=0o700)
    entries = [source / n for n in names] if names is not None else _listing(source)
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir():
                shutil.copytree(entry, partial / entry.name, ignore=_skip)
            elif entry.is_file():
                shutil.copy2(entry, partial / entry.name)
    partial.rename(dest)
    return dest


def _listing(source: Path) -> list[Path]:
    try:
        return [e for e in source.iterdir() if e.name not in OPENCODE_CONFIG_SKIP]
    except OSError:
        return []


def _skip(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n in OPENCODE_CONFIG_SKIP]


def claude_home(run_dir: Path, env: Mapping[str, str]) -> Path:
    """`CLAUDE_CONFIG_DIR` for the run: the user's credentials and settings, and `.claude.json`."""
    source = Path(env.get("CLAUDE_CONFIG_DIR") or _home(env) / ".claude")
    dest = run_dir / "claude-home"
    if not dest.exists():
        copy_once(dest, source, CLAUDE_FILES)
        profile = source / ".claude.json"
        if not profile.is_file():
            profile = _home(env) / ".claude.json"
        with contextlib.suppress(OSError):
            shutil.copy2(profile, dest / ".claude.json")
    return dest


def codex_home(run_dir: Path, env: Mapping[str, str], *, copy: bool) -> Path:
    """`CODEX_HOME` for the run: empty for a private provider, else the user's login and config."""
    dest = run_dir / "codex-home"
    if copy:
        source = Path(env.get("CODEX_HOME") or _home(env) / ".codex")
        return copy_once(dest, source, CODEX_FILES)
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def opencode_home(run_dir: Path, env: Mapping[str, str]) -> Path:
    """Private XDG directories holding the user's OpenCode config and login (`auth.json`)."""
    home = run_dir / "opencode"
    if home.exists():
        return home
    config = Path(env.get("XDG_CONFIG_HOME") or _home(env) / ".config") / "opencode"
    data = Path(env.get("XDG_DATA_HOME") or _home(env) / ".local" / "share") / "opencode"
    copy_once(home / "config" / "opencode", config)
    copy_once(home / "data" / "opencode", data, ("auth.json",))
    for name in ("state", "cache"):
        (home / name).mkdir(exist_ok=True)
    return home


def xdg_env(home: Path) -> dict[str, str]:
    return {f"XDG_{d.upper()}_HOME": str(home / d) for d in ("config", "data", "state", "cache")}
