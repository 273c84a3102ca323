"""Finding runs: in a repository's `.expd/`, by id or unique prefix, and in the user-wide index.

A RUN argument is a full id (`program/YYYYMMDD-HHMMSS`), any unique prefix of one, a unique prefix
of the stamp alone, or the path of a run directory. Outside a repository the user-wide index is
searched instead, so `expd status prog/2026...` works from anywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from shared import codec
from shared.atomic import write_atomic
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.errors import ContractError, UserError
from shared.paths import RepoPaths, RunPaths, find_repo_root, index_dir
from shared.schema import IndexEntry

_MAX_LISTED = 8


@dataclass(frozen=True)
class RunRef:
    """One run directory and the names it is known by."""

    program: str
    stamp: str
    paths: RunPaths
    repo: Path | None = None
    kind: str = "program"
    """`program` or `bakeoff` (then `program` holds the bakeoff's name)."""

    @property
    def run_id(self) -> str:
        return f"{self.program}/{self.stamp}"

    @property
    def is_bakeoff(self) -> bool:
        return self.kind == "bakeoff"


def is_run_dir(directory: Path) -> bool:
    """A run directory has a manifest or a state; a half-created directory is not listed."""
    return (directory / "run.json").is_file() or (directory / "state.json").is_file()


def ref_for_dir(directory: Path, repo: Path | None = None) -> RunRef:
    """`<repo>/.expd/programs/<program>/runs/<stamp>` (or `bakeoffs/<name>/…`) → its RunRef."""
    directory = directory.resolve()
    owner = directory.parent.parent
    if owner.parent.name == "bakeoffs":
        return RunRef(owner.name, directory.name, BakeoffRunPaths(directory), repo, "bakeoff")
    return RunRef(owner.name, directory.name, RunPaths(directory), repo)


def repo_runs(repo: Path, program: str | None = None, *, kind: str | None = None) -> list[RunRef]:
    """Every run of `repo` (or of one program or bakeoff, or of one `kind`), oldest first:
    stamps sort chronologically."""
    expd = RepoPaths(repo).expd
    out: list[RunRef] = []
    for owner_kind, folder, make in (
        ("program", "programs", RunPaths),
        ("bakeoff", "bakeoffs", BakeoffRunPaths),
    ):
        owners_dir = expd / folder
        if (kind is not None and kind != owner_kind) or not owners_dir.is_dir():
            continue
        for owner_dir in owners_dir.iterdir():
            if program is not None and owner_dir.name != program:
                continue
            runs_dir = owner_dir / "runs"
            if not runs_dir.is_dir():
                continue
            for run_dir in runs_dir.iterdir():
                if run_dir.name.startswith(".") or not run_dir.is_dir() or not is_run_dir(run_dir):
                    continue
                paths = make(run_dir)
                out.append(RunRef(owner_dir.name, run_dir.name, paths, repo, owner_kind))
    out.sort(key=lambda ref: (ref.stamp, ref.program))
    return out


def match(arg: str, runs: list[RunRef], *, where: str) -> RunRef:
    """The one run that `arg` names exactly or by unique prefix (of the id or of the stamp)."""
    exact = [r for r in runs if arg in (r.run_id, r.stamp)]
    if len(exact) == 1:
        return exact[0]
    candidates = exact or [r for r in runs if r.run_id.startswith(arg) or r.stamp.startswith(arg)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UserError(f"no run matching {arg!r} in {where}")
    ids = [r.run_id for r in candidates]
    listed = ", ".join(ids[:_MAX_LISTED])
    more = f" and {len(ids) - _MAX_LISTED} more" if len(ids) > _MAX_LISTED else ""
    raise UserError(f"{arg!r} is ambiguous in {where}: it matches {listed}{more}")


def resolve(arg: str | None, cwd: Path | None = None, *, kind: str | None = None) -> RunRef:
    """The run a RUN argument names; with no argument, the newest run of the repo in `cwd`.

    With `kind`, only runs of that kind (`program` or `bakeoff`) are the default, and naming a
    run of the other kind is a clear error (the command does not apply to it).
    """
    ref = _resolve(arg, cwd, kind)
    if kind is not None and ref.kind != kind:
        hint = f"expd bakeoff … {ref.run_id}" if ref.is_bakeoff else f"expd … {ref.run_id}"
        raise UserError(
            f"{ref.run_id} is a {ref.kind} run: this command is for {kind} runs ({hint})"
        )
    return ref


def _resolve(arg: str | None, cwd: Path | None, kind: str | None) -> RunRef:
    if arg:
        as_path = Path(arg).expanduser()
        if not as_path.is_absolute() and cwd is not None:
            as_path = cwd / as_path
        if as_path.is_dir() and is_run_dir(as_path):
            return ref_for_dir(as_path)
    try:
        root = find_repo_root(cwd)
    except UserError:
        if not arg:
            raise
        return match(arg, indexed_runs(), where="the run index (not inside a git repository)")
    runs = repo_runs(root)
    if arg:
        return match(arg, runs, where=str(root))
    if kind is not None:
        runs = [r for r in runs if r.kind == kind]
    if not runs:
        what = "bakeoff runs" if kind == "bakeoff" else "runs"
        how = "expd bakeoff start NAME" if kind == "bakeoff" else "expd start NAME"
        raise UserError(f"no {what} in {root} (start one with: {how})")
    return runs[-1]


# --------------------------------------------------------------------------- user-wide index


def _index_file(run_dir: str, run_id: str) -> str:
    import hashlib  # only `expd start` registers; status should not pay for it

    digest = hashlib.sha256(run_dir.encode()).hexdigest()[:12]
    return f"{run_id.replace('/', '_')}-{digest}.json"


def register(run_paths: RunPaths, repo: Path, run_id: str) -> None:
    """Add a run to the user-wide index (one small file per run, written atomically).

    Called by `expd start` once the run directory exists, so `expd status --all` finds it.
    """
    run_dir = str(run_paths.dir.resolve())
    entry = IndexEntry(
        run_id=run_id, run_dir=run_dir, repo=str(repo.resolve()), created_at=time.time()
    )
    write_atomic(index_dir() / _index_file(run_dir, run_id), codec.encode(entry))


def index_entries() -> list[IndexEntry]:
    """Indexed runs whose directory still exists, oldest first; unreadable entries are skipped."""
    out: list[IndexEntry] = []
    for path in index_dir().glob("*.json"):
        try:
            entry = codec.read(path, IndexEntry)
        except ContractError:
            continue
        if entry.run_dir and is_run_dir(Path(entry.run_dir)):
            out.append(entry)
    out.sort(key=lambda e: (e.created_at, e.run_id))
    return out


def indexed_runs() -> list[RunRef]:
    refs = []
    for entry in index_entries():
        ref = ref_for_dir(Path(entry.run_dir), Path(entry.repo) if entry.repo else None)
        if entry.run_id and "/" in entry.run_id:
            program, stamp = entry.run_id.split("/", 1)
            ref = RunRef(program, stamp, ref.paths, ref.repo, ref.kind)
        refs.append(ref)
    return refs


def unregister(run_dir: str) -> int:
    """Remove the user-wide index entries of the run directory `run_dir` (as `register` wrote it,
    resolved); how many were removed. Entries are matched by content, not by file name."""
    removed = 0
    for path in index_dir().glob("*.json"):
        try:
            entry = codec.read(path, IndexEntry)
        except ContractError:
            continue
        if entry.run_dir == run_dir:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
