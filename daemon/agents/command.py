"""`command` agent: any shell command, prompt on stdin and in `$EXPD_PROMPT_FILE`."""

from __future__ import annotations

import os
import re

from daemon.agents.base import AgentErrorEvent, AgentOutcome, AgentTask, Emit, StatelessAgent, Text
from daemon.ops import children as process
from shared.schema import ProgramConfig

DESCRIPTION = re.compile(r"^\s*EXPD-DESCRIPTION:\s*(.+?)\s*$")
"""A line the command may print to describe its change (else its commit message is used)."""


class CommandAgent(StatelessAgent):
    kind = "command"

    def __init__(self, config: ProgramConfig) -> None:
        self.command = config.agent.command or ""

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        description = ""

        def on_line(stream: str, line: str) -> None:
            nonlocal description
            match = DESCRIPTION.match(line)
            if match and stream == "stdout":
                description = match.group(1)
            emit(Text(text=line, stream=stream))

        env = {**os.environ, **task.env, "EXPD_PROMPT_FILE": str(task.prompt_file)}
        result = await process.run(
            self.command,
            cwd=task.worktree,
            env=env,
            timeout=task.timeout,
            stdin=task.prompt.encode(),
            on_line=on_line,
            on_start=task.on_process_start,
            keep_stdout=False,
            sandbox=task.sandbox,
        )
        outcome = AgentOutcome(description=description)
        if result.timed_out:
            outcome.timed_out = True
            outcome.error = f"agent timed out after {task.timeout:g}s (process group killed)"
        elif result.returncode == 127:
            outcome.error = f"agent command not found: {self.command}"
            outcome.unavailable = True
        elif result.returncode:
            outcome.error = f"agent exited with code {result.returncode}"
        if outcome.error:
            emit(AgentErrorEvent(message=outcome.error))
        return outcome
