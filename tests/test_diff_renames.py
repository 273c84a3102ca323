"""A run's diff stat and patch name a renamed file the way `git diff --numstat -p` does (git's
default rename detection), while the protected-paths check still sees a rename as delete + add."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.ops.git.diff import diff_patch, rename_name
from daemon.ops.git.lookup import changed_paths
from daemon.ops.git.store import open_user_repo
from shared.schema import DiffStat
from tests.repos import git

BODY = "".join(f"line {i} of a file long enough to stay similar\n" for i in range(40))


def git_numstat_patch(root: Path, base: str, head: str) -> tuple[str, DiffStat]:
    """What expd recorded when it ran `git diff --numstat -p` (parsed the same way)."""
    out = git(root, "diff", "--numstat", "-p", "--no-color", "--no-ext-diff", base, head) + "\n"
    stat_part = out.partition("\n\n")[0]
    files: list[str] = []
    added = removed = 0
    for line in stat_part.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        a, r, name = parts
        added += int(a) if a.isdigit() else 0
        removed += int(r) if r.isdigit() else 0
        files.append(name)
    patch = out[out.find("diff --git ") :]
    return patch, DiffStat(files=files, added=added, removed=removed)


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "src" / "pkg").mkdir(parents=True)
    for name in ("plain.py", "src/pkg/edited.py", "src/pkg/same.py", "kept.py"):
        (root / name).write_text(f"# {name}\n" + BODY)
    return root


def changes(root: Path) -> tuple[str, str]:
    base = commit_all(root, "base")
    git(root, "mv", "plain.py", "moved.py")
    (root / "src" / "lib").mkdir()
    git(root, "mv", "src/pkg/edited.py", "src/lib/edited.py")
    text = (root / "src/lib/edited.py").read_text().replace("line 3 ", "line three ")
    (root / "src/lib/edited.py").write_text(text + "one more line\n")
    git(root, "mv", "src/pkg/same.py", "src/pkg/renamed.py")
    (root / "kept.py").write_text((root / "kept.py").read_text() + "appended\n")
    (root / "new.py").write_text("brand new\n")
    return base, commit_all(root, "renames")


def test_renames_match_git_numstat_and_patch(repo: Path) -> None:
    base, head = changes(repo)
    got = diff_patch(open_user_repo(repo), base, head)
    want = git_numstat_patch(repo, base, head)
    assert got[1] == want[1]
    assert sorted(got[1].files) == [
        "kept.py",
        "new.py",
        "plain.py => moved.py",
        "src/pkg/{same.py => renamed.py}",
        "src/{pkg => lib}/edited.py",
    ]
    assert got[0] == want[0]
    assert "rename from plain.py\nrename to moved.py\n" in got[0]


def test_the_protected_paths_check_still_sees_delete_and_add(repo: Path) -> None:
    base, head = changes(repo)
    seen = {(c.path, c.status) for c in changed_paths(repo, base, head)}
    assert {("plain.py", "D"), ("moved.py", "A"), ("src/pkg/edited.py", "D")} <= seen
    assert ("src/lib/edited.py", "A") in seen


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("a.py", "b.py", "a.py => b.py"),
        ("d/a.py", "d/b.py", "d/{a.py => b.py}"),
        ("x/d/a.py", "y/d/a.py", "{x => y}/d/a.py"),
        ("a/b", "a/c/b", "a/{ => c}/b"),
        ("a/c/b", "a/b", "a/{c => }/b"),
        ("src/a.py", "lib/b.py", "src/a.py => lib/b.py"),
    ],
)
def test_rename_names_follow_git(tmp_path: Path, old: str, new: str, name: str) -> None:
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / old).parent.mkdir(parents=True, exist_ok=True)
    (root / old).write_text(BODY)
    base = commit_all(root, "base")
    (root / new).parent.mkdir(parents=True, exist_ok=True)
    git(root, "mv", old, new)
    head = commit_all(root, "move")
    assert git_numstat_patch(root, base, head)[1].files == [name]
    assert rename_name(old, new) == name
    assert diff_patch(open_user_repo(root), base, head)[1].files == [name]
