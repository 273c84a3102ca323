"""`opencode` agent: the OpenCode CLI in headless mode (`opencode run --format json`).

The prompt goes on stdin (a positional message would be re-quoted by the CLI and is limited by
the argument size); `--title` spares the extra model request OpenCode makes to title a session.
Its JSON lines — `text`, `tool_use` (completed or failed tools), `step_finish` (tokens and cost),
`error` (with the provider's HTTP status), each with the `sessionID` — become typed events.
OpenCode retries 429s and 5xx itself (five times) before it reports one as an `error`.

Without `[agent] base_url` it runs with the user's own OpenCode setup and credentials
(`[agent] model` is `provider/model`). With it, expd writes an OpenCode config for an
OpenAI-compatible provider into the run directory (the key stays in its environment variable: the
file says `{env:VAR}`) and gives OpenCode private XDG directories there, so nothing touches the
user's setup. Confined by expd without `base_url`, it gets private XDG directories holding a copy
of the user's OpenCode config and login (daemon/agents/homes.py). OpenCode's default permissions allow edits and shell commands in the project;
whatever would ask is rejected, as nobody is there to answer.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentOutcome,
    AgentTask,
    AgentUnavailable,
    Emit,
    Final,
    StatelessAgent,
    Text,
    ToolResult,
    ToolUse,
    Usage,
)
from daemon.agents.errors import classify_http, classify_message, retry_after_seconds
from daemon.agents.homes import opencode_home, xdg_env
from daemon.agents.prices import cost_usd
from daemon.agents.stream_json import decode, first_line
from daemon.ops import children as process
from shared.schema import AgentConfig, ProgramConfig

PROVIDER = "expd"
"""The provider id of the generated config: the model is `expd/<[agent] model>`."""
MAX_INPUT_CHARS = 200
MAX_OUTPUT_CHARS = 2000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class OpenCodeAgent(StatelessAgent):
    kind = "opencode"

    def __init__(self, config: ProgramConfig, *, model: str | None = None) -> None:
        self.config = config.agent
        self.model = model or self.config.model
        self.executable = (self.config.command or "").strip() or "opencode"
        if self.config.base_url and not self.model:
            raise AgentUnavailable(
                "[agent] base_url needs [agent] model: the model id the endpoint serves"
            )

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        env = {**os.environ, **task.env}
        if self.config.base_url:
            for name in ("OPENCODE_CONFIG_DIR", "OPENCODE_CONFIG_CONTENT"):
                env.pop(name, None)  # the user's own OpenCode settings stay out of this run
            env.update(isolated_env(self.config, self.model or "", task.run_dir / "opencode"))
        else:
            if task.sandbox.confined:
                env.update(xdg_env(opencode_home(task.run_dir, {**env, **self.config.env})))
            if self.config.max_turns and "OPENCODE_CONFIG_CONTENT" not in env:
                steps = {"agent": {"build": {"steps": self.config.max_turns}}}
                env["OPENCODE_CONFIG_CONTENT"] = json.dumps(steps)
        env.setdefault("OPENCODE_DISABLE_AUTOUPDATE", "1")
        env.update(self.config.env)
        env["PWD"] = str(task.worktree)  # OpenCode takes its project directory from $PWD
        key_env = self.config.api_key_env
        outcome = AgentOutcome()
        if shutil.which(self.executable, path=env.get("PATH")) is None:
            outcome.error = (
                f"{self.executable} not found: install OpenCode (npm install -g opencode-ai) "
                "or set [agent] command to its path"
            )
            outcome.unavailable = True
        elif self.config.base_url and key_env and not env.get(key_env):
            outcome.error = f"${key_env} is not set: export the API key in it before `expd start`"
            outcome.error_class = "auth"
        if outcome.error:
            emit(AgentErrorEvent(message=outcome.error, error_class=outcome.error_class or "other"))
            return outcome

        stream = EventStream(self.config, self.model, emit)
        result = await process.run(
            shlex.join(self.command(task)),
            cwd=task.worktree,
            env=env,
            timeout=task.timeout,
            stdin=task.prompt.encode(),
            on_line=stream.line,
            on_start=task.on_process_start,
            keep_stdout=False,
            sandbox=task.sandbox.allowing(task.run_dir / "opencode"),
        )
        return stream.finish(outcome, result, task.timeout)

    def command(self, task: AgentTask) -> list[str]:
        argv = [self.executable, "run", "--format", "json", "--title"]
        argv.append(f"expd {task.name}")
        if self.model:
            model = self.model
            if self.config.base_url and not model.startswith(f"{PROVIDER}/"):
                model = f"{PROVIDER}/{model}"
            argv += ["--model", model]
        return argv + list(self.config.args)


def isolated_env(config: AgentConfig, model: str, home: Path) -> dict[str, str]:
    """Write OpenCode's config for `base_url` under `home`; the env that makes OpenCode use only it."""
    model = model.removeprefix(f"{PROVIDER}/")
    options: dict[str, Any] = {"baseURL": (config.base_url or "").rstrip("/")}
    if config.api_key_env:
        options["apiKey"] = "{env:" + config.api_key_env + "}"
    entry: dict[str, Any] = {"name": model}
    if config.max_tokens:
        entry["limit"] = {"context": 0, "output": config.max_tokens}  # 0: unknown, never compact
    provider = {"npm": "@ai-sdk/openai-compatible", "options": options, "models": {model: entry}}
    settings: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {PROVIDER: provider},
        "enabled_providers": [PROVIDER],
        "model": f"{PROVIDER}/{model}",
        "small_model": f"{PROVIDER}/{model}",
        "share": "disabled",
        "autoupdate": False,
        "snapshot": False,
        "permission": {"edit": "allow", "bash": "allow", "external_directory": "deny"},
    }
    if config.max_turns:
        settings["agent"] = {"build": {"steps": config.max_turns}}
    # OpenCode npm-installs its plugin SDK (~60 MB) into each config dir that lacks it, in the
    # background: declare it installed in the private one, so no run downloads it.
    plugins = home / "config" / "opencode"
    (plugins / "node_modules").mkdir(parents=True, exist_ok=True)
    lock = {"packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}
    (plugins / "package-lock.json").write_text(json.dumps(lock) + "\n")
    path = home / "opencode.json"
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(settings, indent=2) + "\n")
    temp.replace(path)
    return {
        **xdg_env(home),
        "OPENCODE_CONFIG": str(path),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",  # the models.dev catalogue: not needed, maybe offline
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "npm_config_cache": str(home / "npm"),  # for installs into the project's .opencode/
    }


class EventStream:
    """Turns OpenCode's JSON lines into events and totals; tolerant of junk and truncation."""

    def __init__(self, config: AgentConfig, model: str | None, emit: Emit) -> None:
        self.config = config
        self.model = model
        self.emit = emit
        self.cost = 0.0
        self.tokens = 0
        self.session_id: str | None = None
        self.last_text = ""
        self.error: str | None = None
        self.error_class: str | None = None
        self.retry_after: float | None = None
        self.stderr: list[str] = []
        self._warned_price = False

    def line(self, stream: str, line: str) -> None:
        if stream == "stderr":
            text = _ANSI.sub("", line).rstrip()
            if text.strip():
                self.stderr = [*self.stderr[-19:], text]
                self.emit(Text(text=text, stream="stderr"))
            return
        if not line.strip():
            return
        event = decode(line)
        if event is None:
            self.emit(Text(text=line.rstrip()))
            return
        for out in self.parse(event):
            self.emit(out)

    def parse(self, event: Mapping[str, Any]) -> list[AgentEvent]:
        if isinstance(event.get("sessionID"), str):
            self.session_id = event["sessionID"]
        part = _dict(event.get("part"))
        kind = event.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"].strip():
                self.last_text = part["text"]
                return [Text(text=part["text"].strip())]
        elif kind == "reasoning" and isinstance(part.get("text"), str):
            return [Text(text=f"(thinking) {part['text'].strip()}")]
        elif kind == "tool_use":
            return _tool(part)
        elif kind == "step_finish":
            return self._usage(part)
        elif kind == "error":
            return [self._error(event.get("error"))]
        return []

    def _usage(self, part: Mapping[str, Any]) -> list[AgentEvent]:
        tokens = _dict(part.get("tokens"))
        cache = _dict(tokens.get("cache"))
        read, write = _int(cache.get("read")), _int(cache.get("write"))
        # OpenCode reports input without the cached part and output without the reasoning.
        input_tokens = _int(tokens.get("input")) + read + write
        output_tokens = _int(tokens.get("output")) + _int(tokens.get("reasoning"))
        total = _int(tokens.get("total")) or input_tokens + output_tokens
        cost = part.get("cost") if isinstance(part.get("cost"), int | float) else 0.0
        out: list[AgentEvent] = []
        if not cost and total:
            priced = cost_usd(
                self.model,
                self.config.prices,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_input_tokens=read,
            )
            if priced is None and not self._warned_price:
                self._warned_price = True
                name = self.model or "MODEL"
                note = (
                    f'no price known for {name}: cost counted as $0 (set [agent.prices."{name}"])'
                )
                out.append(Text(text=note, stream="stderr"))
            cost = priced or 0.0
        if not (cost or total):
            return out
        self.cost += float(cost)
        self.tokens += total
        return [*out, Usage(cost_usd=float(cost), tokens=total)]

    def _error(self, error: Any) -> AgentErrorEvent:
        error = error if isinstance(error, dict) else {"name": str(error)}
        name = str(error.get("name") or "Error")
        data = _dict(error.get("data"))
        message = str(data.get("message") or name)
        status = data.get("statusCode")
        headers = {str(k).lower(): v for k, v in _dict(data.get("responseHeaders")).items()}
        retry = headers.get("retry-after")
        body = str(data.get("responseBody") or "")
        if name == "ProviderAuthError":
            error_class = "auth"
        elif isinstance(status, int) and status >= 400:
            error_class = classify_http(status, f"{message}\n{body}")
        else:
            error_class = classify_message(f"{name}: {message}")
        text = f"{name}: {message}" + (f" (HTTP {status})" if isinstance(status, int) else "")
        self.error = text if self.error is None else f"{self.error}; {text}"
        self.error_class = error_class
        self.retry_after = retry_after_seconds(str(retry)) if retry is not None else None
        return AgentErrorEvent(message=text, error_class=error_class)

    def finish(
        self, outcome: AgentOutcome, result: process.ProcessResult, timeout: float
    ) -> AgentOutcome:
        """The outcome once the process is gone; a provider error wins over the exit code."""
        outcome.cost_usd, outcome.tokens = self.cost, self.tokens
        outcome.session_id = self.session_id
        outcome.description = first_line(self.last_text)
        if result.timed_out:
            outcome.timed_out = True
            outcome.error = f"agent timed out after {timeout:g}s (process group killed)"
        elif self.error is not None:
            outcome.error, outcome.error_class = self.error, self.error_class
            outcome.retry_after = self.retry_after
            return outcome  # its AgentErrorEvent was already emitted
        elif result.returncode:
            tail = " | ".join(line.strip() for line in self.stderr[-3:])[:500]
            outcome.error = f"opencode exited with code {result.returncode}" + (
                tail and f": {tail}"
            )
            outcome.unavailable = result.returncode == 127  # bash: the command was not found
        if outcome.error:
            self.emit(AgentErrorEvent(message=outcome.error))
        else:
            self.emit(Final(description=outcome.description, session_id=self.session_id))
        return outcome


def _tool(part: Mapping[str, Any]) -> list[AgentEvent]:
    name = str(part.get("tool") or "tool")
    state = _dict(part.get("state"))
    args = {k: _short(v) for k, v in _dict(state.get("input")).items()}
    failed = state.get("status") == "error"
    output = state.get("error") if failed else state.get("output")
    text = output if isinstance(output, str) else json.dumps(output) if output else ""
    return [
        ToolUse(name=name, input=args),
        ToolResult(name=name, output=_clip(text, MAX_OUTPUT_CHARS), is_error=failed),
    ]


def _short(value: Any) -> Any:
    """Tool inputs are logged, not replayed: long strings (file contents) are cut."""
    if isinstance(value, str):
        return _clip(value, MAX_INPUT_CHARS)
    if isinstance(value, dict | list):
        return _clip(json.dumps(value), MAX_INPUT_CHARS)
    return value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and value > 0 else 0
