"""`expd darwin --apply`: archive the generation, then write the next one into program.toml (or
bakeoff.toml) in place — both atomically — and take the archive back when the config cannot be
written. Runs in the CLI process, under the owner's start lock, so a start or another apply never
interleaves with it; a program with an active run is left alone (its daemon fingerprints the file).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.commands.arms_toml import rewrite
from shared import codec
from shared.atomic import fsync_dir, open_own, write_atomic
from shared.bakeoffs.config import load_bakeoff
from shared.bakeoffs.paths import BakeoffPaths
from shared.darwin import Generation
from shared.errors import UserError
from shared.generations import Promotion, archive_name, archive_paths, generations_dir
from shared.locking import is_locked, lock_blocking, unlock
from shared.paths import ProgramPaths
from shared.programs import load_program

NAME_TRIES = 64


@dataclass(frozen=True)
class Owner:
    """The program or bakeoff whose list of arms (variants) a generation rewrites."""

    kind: Literal["program", "bakeoff"]
    repo: Path
    name: str

    @property
    def paths(self) -> ProgramPaths | BakeoffPaths:
        if self.kind == "program":
            return ProgramPaths(self.repo, self.name)
        return BakeoffPaths(self.repo, self.name)

    @property
    def list_key(self) -> str:
        return "arms" if self.kind == "program" else "variant"


@dataclass(frozen=True)
class Applied:
    number: int
    archive: Path
    config: Path


@dataclass(frozen=True)
class _StagedProgram(ProgramPaths):
    staged: Path = Path()

    @property
    def toml(self) -> Path:
        return self.staged


@dataclass(frozen=True)
class _StagedBakeoff(BakeoffPaths):
    staged: Path = Path()

    @property
    def toml(self) -> Path:
        return self.staged


def _token() -> str:
    return secrets.token_hex(4)


def expected_config(before: dict[str, Any], key: str, promotion: Promotion) -> dict[str, Any]:
    """What the rewritten file must parse to: the same, but for `[agent]` and the list."""
    after = {k: v for k, v in before.items() if k != key}
    if promotion.tables:
        after[key] = promotion.tables
    if promotion.agent or "agent" in before:
        after["agent"] = promotion.agent
    return after


def apply_generation(
    owner: Owner,
    generation: Generation,
    promotion: Promotion,
    *,
    before: dict[str, Any],
    now: Callable[[], float] | None = None,
    token: Callable[[], str] | None = None,
) -> Applied:
    """Archive `generation` and write `promotion` into the owner's file, which must still parse
    to `before` (what the plan was made from)."""
    paths = owner.paths
    lock = lock_blocking(paths.start_lock)
    try:
        if isinstance(paths, ProgramPaths) and is_locked(paths.active_lock):
            raise UserError(
                f"program {owner.name!r} has an active run: its program.toml must not change "
                "under it (stop the run, or wait for it to finish)"
            )
        try:
            text = paths.toml.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{paths.toml}: cannot read ({exc.strerror or exc})") from None
        if tomllib.loads(text) != before:
            raise UserError(f"{paths.toml} changed while darwin ran: run it again")
        new_text = rewrite(text, owner.list_key, promotion, before_agent=before.get("agent", {}))
        if tomllib.loads(new_text) != expected_config(before, owner.list_key, promotion):
            raise UserError(
                f"{paths.toml}: the rewrite would change more than the {owner.list_key} and "
                "[agent]; nothing was written"
            )
        folder = generations_dir(paths.dir)
        folder.mkdir(exist_ok=True)
        generation.number = len(archive_paths(folder)) + 1
        generation.created_at = (now or time.time)()
        archive = _write_archive(folder, generation, token or _token)
        try:
            _write_config(owner, new_text)
        except BaseException as exc:
            archive.unlink(missing_ok=True)
            if isinstance(exc, UserError):
                raise
            if isinstance(exc, OSError):
                detail = exc.strerror or str(exc)
                raise UserError(
                    f"could not write {paths.toml} ({detail}): nothing changed, no generation "
                    "archived"
                ) from None
            raise
    finally:
        unlock(lock)
    return Applied(number=generation.number, archive=archive, config=paths.toml)


def _write_archive(folder: Path, generation: Generation, token: Callable[[], str]) -> Path:
    """A new file whose name nobody else has (O_EXCL), then its content atomically."""
    data = msgspec.json.format(codec.encode(generation), indent=2) + b"\n"
    for _ in range(NAME_TRIES):
        path = folder / archive_name(generation.created_at, token())
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        except FileExistsError:
            continue
        try:
            write_atomic(path, data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
    raise UserError(f"no free archive name in {folder} after {NAME_TRIES} tries")


def _install(staged: Path, target: Path) -> None:
    os.replace(staged, target)


def _write_config(owner: Owner, text: str) -> None:
    """A temp file beside the config, fsynced, loaded by the real loader, then renamed over it."""
    paths = owner.paths
    target = paths.toml
    staged = target.with_name(f".{target.name}.{os.getpid()}.darwin.tmp")
    fd = open_own(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        try:
            view = memoryview(text.encode("utf-8"))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            if owner.kind == "program":
                load_program(_StagedProgram(owner.repo, owner.name, staged=staged))
            else:
                load_bakeoff(_StagedBakeoff(owner.repo, owner.name, staged=staged))
        except UserError as exc:
            message = str(exc).replace(str(staged), str(target))
            raise UserError(f"the rewritten {target.name} would not load: {message}") from None
        _install(staged, target)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # renamed: the write stands even if this fails
        fsync_dir(target.parent)
