"""`codex` agent: the Codex CLI in headless mode (`codex exec --json`), one thread per experiment.

The prompt goes on stdin (`-`), so briefings longer than one argv string allowed still work.
Confined by expd (daemon/ops/sandbox.py), Codex's own sandbox is turned off rather than nested
(`--sandbox danger-full-access`: its bubblewrap cannot run inside expd's) and CODEX_HOME is a
private copy of the user's in the run directory. Unconfined, commands run in Codex's own
`workspace-write` sandbox (the worktree is writable, `.git` is not, so expd commits what is left).
With `[agent] base_url` a private provider is defined with `-c` overrides and CODEX_HOME is an
empty folder in the run directory, so the user's ~/.codex is never touched.
Codex reports tokens but not dollars: the cost comes from daemon/agents/prices.py.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import msgspec

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentOutcome,
    AgentTask,
    Emit,
    Final,
    StatelessAgent,
    Text,
    ToolResult,
    ToolUse,
    Usage,
)
from daemon.agents.codex_stream import CodexStream, classify, retry_after
from daemon.agents.homes import codex_home
from daemon.agents.prices import cost_usd
from daemon.agents.stream_json import first_line
from daemon.ops import children as process
from shared.schema import ProgramConfig

PROVIDER_ID = "expd"
KEY_ENVS = ("OPENAI_API_KEY", "CODEX_API_KEY")
SANDBOX_FLAGS = ("--sandbox", "-s", "--dangerously-bypass-approvals-and-sandbox", "--yolo")
SANDBOX_NOTE = (
    "\n\n(Codex sandbox: `.git` is read-only here, so leave your change uncommitted; expd commits "
    "it with the first line of your final message as the commit message.)\n"
)


class CodexAgent(StatelessAgent):
    kind = "codex"

    def __init__(self, config: ProgramConfig, model: str | None = None) -> None:
        self.config = config
        self.agent = config.agent
        self.model = model or self.agent.model
        self.executable = (self.agent.command or "").strip() or "codex"

    def command(self, task: AgentTask) -> list[str]:
        """The argv: JSONL events, the worktree as root, no approvals, prompt from stdin."""
        argv = [self.executable, "exec", "--json", "--color", "never", "--skip-git-repo-check"]
        argv += ["--cd", str(task.worktree)]
        if not self._sandbox_in_args():
            inner = "danger-full-access" if task.sandbox.confined else "workspace-write"
            argv += ["--sandbox", inner]
        if self.model:
            argv += ["--model", self.model]
        if self.agent.effort:
            argv += ["-c", f"model_reasoning_effort={json.dumps(self.agent.effort)}"]
        if self.agent.base_url:
            provider = {
                "name": "expd",
                "base_url": self.agent.base_url.rstrip("/"),
                "wire_api": "responses",
            }
            if self.agent.api_key_env:
                provider["env_key"] = self.agent.api_key_env
            argv += ["-c", f"model_provider={json.dumps(PROVIDER_ID)}"]
            for key, value in provider.items():
                argv += ["-c", f"model_providers.{PROVIDER_ID}.{key}={json.dumps(value)}"]
        # Codex snapshots the shell (its environment, so the API key) into its home for the session
        # and deletes it at exit; a turn ended early would leave the key in a file.
        argv += ["-c", "features.shell_snapshot=false"]
        return [*argv, *self.agent.args, "-"]

    def _sandbox_in_args(self) -> bool:
        return any(a.split("=")[0] in SANDBOX_FLAGS for a in self.agent.args)

    def environment(self, task: AgentTask) -> dict[str, str]:
        env = {**os.environ, **task.env, **self.agent.env}
        if self.agent.base_url or task.sandbox.confined:
            home = codex_home(task.run_dir, env, copy=not self.agent.base_url)
            env["CODEX_HOME"] = str(home)
        if not self.agent.base_url and self.agent.api_key_env and env.get(self.agent.api_key_env):
            env["CODEX_API_KEY"] = env[self.agent.api_key_env]
        return env

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        env = self.environment(task)
        keys = [
            env[k] for k in {*KEY_ENVS, self.agent.api_key_env or ""} if len(env.get(k, "")) > 3
        ]

        def out(event: AgentEvent) -> None:
            emit(_redact(event, keys))

        outcome = AgentOutcome()
        if shutil.which(self.executable, path=env.get("PATH")) is None:
            outcome.error, outcome.unavailable = f"codex CLI not found: {self.executable}", True
        elif self.agent.api_key_env and not env.get(self.agent.api_key_env):
            outcome.error = f"${self.agent.api_key_env} ([agent] api_key_env) is not set"
            outcome.error_class = "auth"
        if outcome.error:
            out(AgentErrorEvent(message=outcome.error, error_class=outcome.error_class or "other"))
            return outcome

        stream = CodexStream(task.worktree, out)
        home = [Path(env["CODEX_HOME"])] if "CODEX_HOME" in env else []
        inner = not (self._sandbox_in_args() or task.sandbox.confined)
        prompt = task.prompt + (SANDBOX_NOTE if inner else "")
        result = await process.run(
            "exec " + shlex.join(self.command(task)),
            cwd=task.worktree,
            env=env,
            timeout=task.timeout,
            stdin=prompt.encode(),
            on_line=lambda name, line: (
                stream.feed(line) if name == "stdout" else out(Text(text=line, stream="stderr"))
            ),
            on_start=task.on_process_start,
            keep_stdout=False,
            sandbox=task.sandbox.allowing(*home),
        )
        self._account(stream, outcome, out)
        outcome.session_id = stream.session_id
        outcome.description = first_line(stream.message)
        if result.timed_out:
            outcome.timed_out = True
            outcome.error = f"agent timed out after {task.timeout:g}s (process group killed)"
        elif result.returncode == 127 and stream.session_id is None:
            outcome.error, outcome.unavailable = f"codex CLI not runnable: {self.executable}", True
        elif stream.failure is not None or not stream.completed:
            message = stream.failure or stream.last_error or result.stderr_tail.strip()
            message = message or (
                f"codex stopped before its turn completed (exit code {result.returncode})"
            )
            outcome.error = _redact_text(message, keys)[-1000:]
            killed = result.returncode is not None and result.returncode < 0
            outcome.error_class = None if killed and stream.failure is None else classify(message)
            outcome.retry_after = retry_after(message)
        if outcome.error:
            out(AgentErrorEvent(message=outcome.error, error_class=outcome.error_class or "other"))
        else:
            out(Final(description=outcome.description, session_id=outcome.session_id))
        return outcome

    def _account(self, stream: CodexStream, outcome: AgentOutcome, out: Emit) -> None:
        """Price each turn's tokens; Usage is emitted once per experiment with the totals."""
        unpriced = False
        for fresh, cached, output in stream.usages:
            cost = cost_usd(
                self.model,
                self.agent.prices,
                input_tokens=fresh,
                output_tokens=output,
                cached_input_tokens=cached,
            )
            unpriced = unpriced or cost is None
            outcome.cost_usd += cost or 0.0
            outcome.tokens += fresh + output
        if unpriced:
            out(Text(text=_no_price(self.model), stream="stderr"))
        if stream.usages:
            out(Usage(cost_usd=outcome.cost_usd, tokens=outcome.tokens))


def _no_price(model: str | None) -> str:
    name = model or "(codex default)"
    return (
        f"no price known for model {name!r}: its cost is counted as $0 — set [agent] model and "
        f'[agent.prices."{name}"] input/output (USD per million tokens) in program.toml'
    )


def _redact_text(text: str, keys: list[str]) -> str:
    for key in keys:
        text = text.replace(key, "[redacted]")
    return text


_Event = Text | ToolUse | ToolResult | Usage | AgentErrorEvent | Final


def _redact(event: AgentEvent, keys: list[str]) -> AgentEvent:
    """The event with any API key blanked out, wherever a command or the CLI echoed it."""
    if not keys:
        return event
    data = msgspec.json.encode(event).decode()
    clean = _redact_text(data, keys)
    return event if clean == data else msgspec.json.decode(clean, type=_Event)
