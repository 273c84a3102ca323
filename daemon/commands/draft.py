"""`expd init NAME --draft`: one confined agent session that proposes a program.

The agent never sees the user's checkout. expd checks the committed HEAD out into a temporary
folder (`draft/repo`, read-only to the agent) beneath the folder the agent works in and writes to
(`draft/`, its current directory); the user's checkout and git directory, expd's git dir for the
copy and the user's state are hidden (bwrap) or at least unwritable (Landlock), and only the
user's objects the copy borrows are shown, read-only. Without a sandbox that confines, nothing
runs. What the agent leaves is untrusted: shared/drafts.py reads it under the output contract.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio

from daemon.agents.base import AgentEvent, AgentOutcome, AgentTask, render
from daemon.agents.registry import make_agent
from daemon.commands.draft_prompt import draft_prompt
from daemon.commands.validate import sigterm_interrupts
from daemon.ops.confine import run_confinement
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.lookup import repo_head
from daemon.ops.git.store import TreeError
from daemon.ops.reaper import harden_daemon
from daemon.ops.sandbox import Sandbox, SandboxUnavailable, make, resolve
from shared.agent_kinds import check
from shared.drafts import Draft, check_draft
from shared.errors import UserError
from shared.paths import RepoPaths, check_program_name
from shared.schema import AgentConfig, ProgramConfig

DRAFT_TIMEOUT_S = 20 * 60
SNAPSHOT = "repo"
MAX_LOG_LINES = 2000


@dataclass
class DraftRequest:
    """What the user asked for: the program's name and the drafting agent."""

    name: str
    kind: str
    model: str | None = None
    command: str | None = None
    """The drafting command (`command` kind), or another path to the agent's CLI."""
    sandbox: str = "auto"
    metric: str | None = None
    direction: str | None = None
    measure: str | None = None
    """A measurement command the user suggests (the agent builds measure.sh around it)."""
    runs: int = 10
    timeout: float = DRAFT_TIMEOUT_S


@dataclass
class DraftSession:
    """A checked draft and how it was made."""

    draft: Draft
    sandbox: str
    sandbox_detail: str
    seconds: float
    cost_usd: float = 0.0
    summary: str = ""
    log: list[str] = field(default_factory=list)


def draft_sandbox(mode: str, *, repo: Path, folder: Path, snapshot: Path, git: Path) -> Sandbox:
    """`folder` writable, `snapshot` (inside it) read-only, the user's repository out of sight;
    a UserError when no sandbox that confines can run here."""
    try:
        choice = resolve(mode, "--sandbox")
    except SandboxUnavailable as exc:
        raise UserError(str(exc)) from None
    if choice.backend == "none":
        raise UserError(
            f"drafting needs a sandbox to keep the agent out of your files: {choice.detail}"
        )
    base = run_confinement(repo, folder, [git])
    return make(choice, replace(base, readonly=(*base.readonly, snapshot.resolve())))


def _agent_config(request: DraftRequest) -> ProgramConfig:
    agent = AgentConfig(kind=request.kind, model=request.model, command=request.command)
    return ProgramConfig(metric="draft", direction="lower", agent=agent)


def preflight(root: Path, request: DraftRequest) -> None:
    """The mistakes found before anything runs: a taken name, an agent that cannot run."""
    check_program_name(request.name)
    program = RepoPaths(root).program(request.name)
    if program.dir.exists():
        raise UserError(f"program {request.name!r} already exists at {program.dir}")
    if request.kind == "command" and not (request.command or "").strip():
        raise UserError("--agent command needs --command CMD (it writes the draft)")
    if request.kind == "tune":
        raise UserError("the tune agent cannot draft a program: use claude, codex, opencode …")
    found = check(_agent_config(request).agent)
    if not found.ok:
        raise UserError(f"agent {request.kind} cannot run here: {found.detail}")


def run_draft(
    root: Path, request: DraftRequest, on_line: Callable[[str], None] | None = None
) -> DraftSession:
    """Run the drafting agent once, confined, and check what it left (a DraftError if it breaks
    the contract). The temporary folders are removed on any exit."""
    preflight(root, request)
    commit = repo_head(root)
    # As the daemon does before it runs an agent: what the agent detaches (`setsid`) is adopted
    # here and swept when it exits, and the agent cannot read this process's memory.
    harden_daemon()
    started = time.monotonic()
    log: list[str] = []

    def emit(event: AgentEvent) -> None:
        line = render(event)
        if len(log) < MAX_LOG_LINES:
            log.append(line)
        if on_line is not None:
            on_line(line)

    with sigterm_interrupts(), tempfile.TemporaryDirectory(prefix="expd-draft-") as tmp:
        session = Path(tmp)
        folder, git, home = session / "draft", session / "git", session / "agent"
        snapshot = folder / SNAPSHOT
        folder.mkdir()
        home.mkdir()
        try:
            EvalTree(repo=root, path=snapshot, gitdir=git).checkout_sync(commit)
        except TreeError as exc:
            raise UserError(str(exc)) from None
        box = draft_sandbox(request.sandbox, repo=root, folder=folder, snapshot=snapshot, git=git)
        prompt = draft_prompt(
            request.name,
            snapshot=SNAPSHOT,
            runs=request.runs,
            metric=request.metric,
            direction=request.direction,
            measure=request.measure,
        )
        prompt_file = folder / ".prompt.md"
        prompt_file.write_text(prompt)
        task = AgentTask(
            experiment=0,
            worktree=folder,
            run_dir=home,
            prompt=prompt,
            prompt_file=prompt_file,
            timeout=request.timeout,
            env={
                "EXPD_DRAFT_DIR": str(folder),
                "EXPD_REPO_COPY": str(snapshot),
                "EXPD_PROGRAM": request.name,
            },
            sandbox=box,
            purpose="draft",
            title=f"draft {request.name}",
        )
        agent = make_agent(
            _agent_config(request), kind=request.kind, model=request.model, run_dir=home
        )

        async def session_run() -> AgentOutcome:
            try:
                return await agent.run(task, emit)
            finally:
                await agent.close()

        outcome = anyio.run(session_run)
        if outcome.error:
            raise UserError(f"the drafting agent failed: {outcome.error}")
        draft = check_draft(
            folder,
            kind=request.kind,
            model=request.model,
            metric=request.metric,
            direction=request.direction,
        )
    return DraftSession(
        draft=draft,
        sandbox=box.backend,
        sandbox_detail=_detail(box),
        seconds=time.monotonic() - started,
        cost_usd=outcome.cost_usd,
        summary=outcome.description,
        log=log,
    )


def _detail(box: Sandbox) -> str:
    if box.backend == "bwrap":
        return "the repository hidden; a read-only copy of HEAD shown"
    return "writes only in the draft folder; the repository stays readable"
