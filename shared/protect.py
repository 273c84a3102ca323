"""Protected paths: `[measure] protect` globs the agent's change must leave alone.

A measurement usually runs code that lives in the repository (`python bench.py`, the test suite);
an agent that edits it can get any change kept. A candidate that adds, changes, deletes or renames
a protected path, or replaces it with a symlink, is discarded before anything is measured.

Globs are relative to the repository root: `*` and `?` stay inside one directory, `**` spans
directories, `[abc]` is a character class. A pattern that names a directory protects everything
below it (`tests` is `tests/**`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SYMLINK_MODE = "120000"
MAX_NAMED = 3


@dataclass(frozen=True)
class PathChange:
    """One path of a diff between two commits (a rename is a deletion plus an addition)."""

    path: str
    status: str
    """git's letter: A added, D deleted, M modified, T type changed."""
    old_mode: str = ""
    new_mode: str = ""

    def what(self) -> str:
        if self.new_mode == SYMLINK_MODE and self.old_mode != SYMLINK_MODE:
            return "replaced by a symlink" if self.status != "A" else "added as a symlink"
        match self.status:
            case "A":
                return "added"
            case "D":
                return "deleted"
            case "T":
                return "type changed"
        if self.old_mode != self.new_mode:
            return f"mode changed to {self.new_mode}"
        return "modified"


def check_pattern(pattern: str) -> str | None:
    """Why `pattern` cannot be a protect glob, or None."""
    if not pattern.strip():
        return "an empty pattern"
    if pattern.startswith("/") or pattern.startswith("../") or "/../" in f"/{pattern}/":
        return f"{pattern!r} is not relative to the repository (no leading '/', no '..')"
    try:
        _compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid glob ({exc})"
    return None


def _normal(pattern: str) -> str:
    """Without `./` in front, or `/` and `/**` behind: the directory stands for what it holds."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.rstrip("/")
    while pattern.endswith("/**"):
        pattern = pattern[:-3].rstrip("/")
    return pattern


def _compile(pattern: str) -> re.Pattern[str]:
    glob = _normal(pattern)
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := glob.find("]", i + 2)) > 0:
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    # The path itself, or anything below it when the pattern names a directory.
    return re.compile("".join(out) + "(?:/.*)?", re.DOTALL)


class Protected:
    """The compiled `[measure] protect` globs."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = list(patterns)
        self._compiled = [_compile(p) for p in patterns if _normal(p)]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def covers(self, path: str) -> bool:
        return any(rx.fullmatch(path) for rx in self._compiled)

    def violation(self, changes: Iterable[PathChange]) -> str | None:
        """The discard reason naming the protected paths a change touches, else None."""
        hits = [c for c in changes if self.covers(c.path)]
        if not hits:
            return None
        named = ", ".join(f"{c.path} ({c.what()})" for c in hits[:MAX_NAMED])
        more = f" and {len(hits) - MAX_NAMED} more" if len(hits) > MAX_NAMED else ""
        noun = "path" if len(hits) == 1 else "paths"
        return f"protected {noun} changed: {named}{more} (see [measure] protect)"


_WORD = re.compile(r"[^\s'\"`;|&<>()=$,]+")


def unprotected_mentions(
    texts: Iterable[str], tracked: Sequence[str], protected: Protected
) -> list[str]:
    """Tracked files (or directories of them) the commands in `texts` name but nothing protects.

    A measurement that runs them measures whatever the agent makes of them.
    """
    files = set(tracked)
    dirs = {f.rsplit("/", i)[0] for f in tracked for i in range(1, f.count("/") + 1)}
    found: dict[str, None] = {}
    for text in texts:
        for word in _WORD.findall(text):
            name = _normal(word)
            if not name or name.startswith("-"):
                continue
            if name in files:
                if not protected.covers(name):
                    found[name] = None
                continue
            if name in dirs:
                below = (f for f in tracked if f.startswith(name + "/"))
                if not all(protected.covers(f) for f in below):
                    found[name + "/"] = None
    return list(found)
