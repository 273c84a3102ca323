"""Running the program's measurement and reading its metrics.

The build and the measurement run the agent's committed code: both go through the measurement's
sandbox (daemon/ops/confine.py `for_measure`), never as the user unconfined unless it is off.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon.ops import children as process
from daemon.ops.sandbox import UNCONFINED, Sandbox
from shared.paths import ProgramPaths
from shared.programs import parse_duration
from shared.schema import ProgramConfig

MARK_VAR = "EXPD_RUN_MARK"
"""In a measurement's environment instead of `EXPD_RUN_DIR`: it names the run for the recovery of
leftovers (daemon/service/recovery.py) without telling the measured code where the record is."""


def run_mark(run_dir: Path) -> str:
    """An opaque, stable token for the run directory (a digest of its path)."""
    return hashlib.sha256(str(run_dir).encode()).hexdigest()[:24]


_METRIC_LINE = re.compile(r"^\s*METRIC\s+([A-Za-z_][\w.-]*)\s*=\s*(\S+)\s*$")


def _number(value: int | float) -> float:
    """A JSON number as a float; an integer too large for one is infinite, not an error."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def parse_metrics(stdout: str) -> dict[str, float]:
    """Numeric metrics from the last JSON-object line, else from `METRIC name=value` lines.

    Values may be non-finite (`nan`, `inf`, `1e999`, a 400-digit integer): the caller decides.
    """
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out = {}
            for key, value in obj.items():
                if isinstance(value, bool):
                    continue
                if isinstance(value, int | float):
                    out[str(key)] = _number(value)
            return out
    out = {}
    for line in stdout.splitlines():
        match = _METRIC_LINE.match(line)
        if match:
            try:
                out[match.group(1)] = float(match.group(2))
            except ValueError:
                out[match.group(1)] = math.nan
    return out


@dataclass
class Sample:
    ok: bool
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    duration: float = 0.0


@dataclass
class Measurer:
    """Knows how to build and measure one worktree for one program."""

    config: ProgramConfig
    program: ProgramPaths
    worktree: Path
    env: Mapping[str, str]
    sandbox: Sandbox = UNCONFINED
    """Confines the build and every measurement (the tree, temp, diagnostics file writable)."""

    def _ready(self) -> None:
        """The diagnostics file exists before each run: the sandbox binds that one file."""
        path = self.env.get("EXPD_DIAGNOSTICS_FILE")
        if path and self.sandbox.confined and not Path(path).exists():
            Path(path).touch()

    @property
    def command(self) -> str:
        if self.config.measure.command:
            return self.config.measure.command
        return f"bash {shlex.quote(str(self.program.measure_sh))}"

    @property
    def build_command(self) -> str | None:
        if self.config.measure.build:
            return self.config.measure.build
        if self.program.build_sh.exists():
            return f"bash {shlex.quote(str(self.program.build_sh))}"
        return None

    async def build(self, on_start: Callable[[int], None] | None = None) -> Sample:
        command = self.build_command
        if command is None:
            return Sample(ok=True)
        timeout = parse_duration(self.config.measure.build_timeout)
        self._ready()
        result = await process.run(
            command,
            cwd=self.worktree,
            env=self.env,
            timeout=timeout,
            on_start=on_start,
            sandbox=self.sandbox,
        )
        if result.timed_out:
            return Sample(ok=False, error=f"build timed out after {timeout:g}s", duration=timeout)
        if result.returncode:
            return Sample(
                ok=False,
                error=f"build exited with code {result.returncode}: {_last(result.stderr_tail)}",
                duration=result.duration,
            )
        return Sample(ok=True, duration=result.duration)

    async def once(self, on_start: Callable[[int], None] | None = None) -> Sample:
        timeout = parse_duration(self.config.measure.timeout)
        self._ready()
        started = time.monotonic()
        result = await process.run(
            self.command,
            cwd=self.worktree,
            env=self.env,
            timeout=timeout,
            on_start=on_start,
            sandbox=self.sandbox,
        )
        duration = time.monotonic() - started
        if result.timed_out:
            return Sample(
                ok=False, error=f"measurement timed out after {timeout:g}s", duration=duration
            )
        if result.returncode:
            return Sample(
                ok=False,
                error=f"measurement exited with code {result.returncode}: {_last(result.stderr_tail)}",
                duration=duration,
            )
        parsed = parse_metrics(result.stdout)
        # Non-finite values never reach a record (JSON has no spelling for them).
        metrics = {k: v for k, v in parsed.items() if math.isfinite(v)}
        name = self.config.metric
        if name in parsed and name not in metrics:
            return Sample(
                ok=False,
                metrics=metrics,
                error=f"metric {name!r} is {parsed[name]}: not a finite number",
                duration=duration,
            )
        if name not in metrics:
            found = ", ".join(sorted(parsed)) or "no metrics"
            tail = _last(result.stdout) or "(empty output)"
            return Sample(
                ok=False,
                metrics=metrics,
                error=f"metric {name!r} missing from the output (found {found}; last line: {tail})",
                duration=duration,
            )
        return Sample(ok=True, metrics=metrics, duration=duration)


def _last(text: str, limit: int = 200) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
