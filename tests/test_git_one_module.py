"""All of the product's git (libgit2 through pygit2, and the few git processes) lives in the package
`daemon/ops/git/`: one place to read for what expd does to a repository, with which identity and
environment. Tests may still run git to set repos up.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "daemon", "tui")
GIT_PACKAGE = Path("daemon/ops/git")
LIBRARIES = frozenset({"git", "pygit2"})
PROCESS_CALLS = frozenset(
    {
        "run",
        "Popen",
        "call",
        "check_call",
        "check_output",
        "system",
        "popen",
        "execvp",
        "execlp",
        "spawnlp",
        "create_subprocess_exec",
        "create_subprocess_shell",
        "open_process",
        "run_process",
    }
)


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _is_git_word(node: ast.AST) -> bool:
    """`"git"`, or a string (plain or f-string) that starts a `git ...` shell command."""
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value == "git" or node.value.startswith("git "))
    )


def _runs_git(node: ast.AST) -> bool:
    """An import of a git library, a `["git", ...]` argv, or a process started with a git command."""
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] in LIBRARIES for a in node.names)
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] in LIBRARIES
    if isinstance(node, ast.List | ast.Tuple):
        first = node.elts[0] if node.elts else None
        return isinstance(first, ast.Constant) and first.value == "git"
    if isinstance(node, ast.Call):
        return _call_name(node) in PROCESS_CALLS and bool(node.args) and _is_git_word(node.args[0])
    return False


def git_uses(source: str) -> list[int]:
    """Lines that import a git library or build a git command line."""
    nodes = ast.walk(ast.parse(source))
    return sorted({n.lineno for n in nodes if isinstance(n, ast.stmt | ast.expr) and _runs_git(n)})


def test_the_checker_sees_each_way_of_running_git() -> None:
    source = (
        "import git\n"
        "from pygit2 import Repository\n"
        "import subprocess\n"
        "subprocess.run(['git', 'status'])\n"
        "subprocess.run(('git', 'status'))\n"
        "subprocess.run(f'git {x}', shell=True)\n"
        "os.system('git gc')\n"
        "print('git is a tool')\n"
    )
    assert git_uses(source) == [1, 2, 4, 5, 6, 7]


def test_git_runs_only_in_the_git_module() -> None:
    found: dict[str, list[int]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if lines := git_uses(path.read_text()):
                found[str(relative)] = lines
    own = [name for name in found if Path(name).is_relative_to(GIT_PACKAGE)]
    assert own, "the checker no longer recognises the git package's own calls"
    for name in own:
        del found[name]
    assert found == {}, f"git used outside {GIT_PACKAGE} (route it through that package): {found}"
