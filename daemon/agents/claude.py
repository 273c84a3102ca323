"""`claude` agent: the Claude Code CLI in headless mode (`claude -p --output-format stream-json`).

The experiment's briefing is appended to Claude Code's own system prompt and a short instruction
goes on stdin. Edits inside the worktree are accepted (`--permission-mode acceptEdits`) and Bash is
allowed, since nobody is there to answer a prompt; `--dangerously-skip-permissions` is not used (the
CLI refuses it as root, and it would allow edits outside the worktree too). `ClaudeStream` turns
the NDJSON stream into events; the final `result` line gives the cost, tokens, session id and, for
API errors, the HTTP status that classifies the failure. Confined, it runs with a private copy of
its state folder (`CLAUDE_CONFIG_DIR`, see daemon/agents/homes.py), never the user's `~/.claude`.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentOutcome,
    AgentTask,
    Emit,
    Final,
    StatelessAgent,
    Usage,
)
from daemon.agents.claude_stream import ClaudeStream
from daemon.agents.homes import claude_home
from daemon.agents.stream_json import redactor
from daemon.ops import children as process
from shared.agent_kinds import KINDS, executable_for
from shared.schema import ProgramConfig

PREAMBLE = """You are running unattended inside expd, an automated optimisation loop: nobody will \
answer questions or permission prompts. Work only in the current directory (a git worktree). \
Committing is optional: expd commits, measures and keeps or reverts your change. When you are \
done, end with a one-line summary of what you changed — it becomes the experiment's description.

"""
INSTRUCTION = (
    "Carry out experiment {n} as briefed in the system prompt, then summarise it in one line."
)
TASK_PREAMBLE = """You are running unattended inside expd, which compares agent setups on tasks: \
nobody will answer questions or permission prompts. Work only in the current directory (a git \
worktree). Committing is optional: expd commits your work and checks it against the task's \
criteria. When you are done, end with your final answer: what the task asks for, or a one-line \
summary of what you changed.

"""
TASK_INSTRUCTION = "Carry out the task briefed in the system prompt, then give your final answer."
DRAFT_PREAMBLE = """You are running unattended inside expd, drafting a program for it: nobody will \
answer questions or permission prompts. The current directory is a scratch folder, not a git \
worktree: write the files the brief asks for there, and change nothing else. When you are done, \
end with a one-line summary of your proposal.

"""
DRAFT_INSTRUCTION = (
    "Draft the program as briefed in the system prompt, then summarise it in one line."
)
MAX_ARG_BYTES = 100_000
"""A briefing longer than this goes on stdin instead (Linux caps one argument at 128 KiB)."""
KEY_ENVS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


class ClaudeAgent(StatelessAgent):
    kind = "claude"

    def __init__(self, config: ProgramConfig, *, model: str | None = None) -> None:
        self.config = config.agent
        self.model = model or config.agent.model
        self.executable = os.path.expanduser(executable_for(KINDS["claude"], config.agent) or "")

    def command(self, task: AgentTask) -> tuple[list[str], bytes]:
        """The argv and the stdin for one experiment."""
        argv = [self.executable, "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--permission-mode", "acceptEdits", "--allowedTools", "Bash"]
        if task.purpose == "task":
            stdin, briefing = TASK_INSTRUCTION, TASK_PREAMBLE + task.prompt
        elif task.purpose == "draft":
            stdin, briefing = DRAFT_INSTRUCTION, DRAFT_PREAMBLE + task.prompt
        else:
            stdin, briefing = INSTRUCTION.format(n=task.experiment), PREAMBLE + task.prompt
        if len(briefing.encode()) <= MAX_ARG_BYTES:
            argv += ["--append-system-prompt", briefing]
        else:
            stdin = briefing + "\n\n" + stdin
        if self.model:
            argv += ["--model", self.model]
        if self.config.max_turns:
            argv += ["--max-turns", str(self.config.max_turns)]
        return argv + list(self.config.args), stdin.encode()

    def environment(self, task: AgentTask) -> dict[str, str]:
        """`[agent] base_url`, `api_key_env` and `max_tokens` in the variables Claude Code reads.

        The CLI appends `/v1/messages` itself, so a base URL written OpenAI-style (`…/v1`) is cut.
        """
        env = {**os.environ, **task.env}
        if self.config.base_url:
            env["ANTHROPIC_BASE_URL"] = re.sub(r"/v1/?$", "", self.config.base_url.rstrip("/"))
        if self.config.api_key_env and env.get(self.config.api_key_env):
            env["ANTHROPIC_API_KEY"] = env[self.config.api_key_env]
        if self.config.max_tokens:
            env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(self.config.max_tokens)
        env.update(self.config.env)
        if task.sandbox.confined and "CLAUDE_CONFIG_DIR" not in self.config.env:
            env["CLAUDE_CONFIG_DIR"] = str(claude_home(task.run_dir, env))
        return env

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        env = self.environment(task)
        redact = redactor([env.get(k) for k in (*KEY_ENVS, self.config.api_key_env or "")])

        def out(event: AgentEvent) -> None:
            emit(redact(event))

        groups: list[int] = []

        def started(pgid: int) -> None:
            groups.append(pgid)
            task.on_process_start(pgid)

        def stop() -> None:
            for pgid in groups:
                process.kill_group(pgid)

        stream = ClaudeStream(out, task.worktree, self.model, self.config.prices, stop)
        argv, stdin = self.command(task)
        result = await process.run(
            shlex.join(argv),
            cwd=task.worktree,
            env=env,
            timeout=task.timeout,
            stdin=stdin,
            on_line=stream.line,
            on_start=started,
            keep_stdout=False,
            sandbox=task.sandbox.allowing(*_private(env)),
        )
        outcome = self._outcome(task, stream, result)
        if outcome.cost_usd or outcome.tokens:
            out(Usage(cost_usd=outcome.cost_usd, tokens=outcome.tokens))
        if outcome.error:
            out(AgentErrorEvent(message=outcome.error, error_class=outcome.error_class or "crash"))
        else:
            out(Final(description=outcome.description, session_id=outcome.session_id))
        return outcome

    def _outcome(
        self, task: AgentTask, stream: ClaudeStream, result: process.ProcessResult
    ) -> AgentOutcome:
        """The stream's outcome; a result line is trusted whatever the exit code."""
        outcome = stream.outcome(result.returncode)
        if result.timed_out:
            outcome.timed_out = True
            outcome.error = f"agent timed out after {task.timeout:g}s (process group killed)"
            outcome.error_class = None
        elif result.returncode == 127 and stream.result is None:
            outcome.error = f"claude not found: {self.executable}"
            outcome.error_class = None
            outcome.unavailable = True
        return outcome


def _private(env: dict[str, str]) -> list[Path]:
    home = env.get("CLAUDE_CONFIG_DIR")
    return [Path(home)] if home else []
