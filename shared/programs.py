"""Programs: reading and validating `program.toml`, fingerprints, and `expd init` scaffolding."""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from shared.arms import check_arms
from shared.errors import UserError
from shared.paths import PROGRAM_FILES, ProgramPaths, RepoPaths, check_program_name
from shared.protect import check_pattern
from shared.schema import AGENT_KINDS, LanesConfig, ProgramConfig

MAX_LANES = 256
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | float, *, what: str = "duration") -> float:
    """Seconds from `90`, `"90s"`, `"10m"`, `"1.5h"` or `"500ms"`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise UserError(
                f"invalid {what} {value!r}: use a number of seconds or e.g. '90s', '10m'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"invalid {what} {value!r}: must be positive")
    return seconds


def _where(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's `$.measure.timeout` into `[measure] timeout`."""
    text = str(exc)
    match = re.search(r" - at `\$((?:\.[^`.\[]+|\[[^\]]*\])*)`$", text)
    message = text[: match.start()] if match else text
    message, unknown = re.subn(
        r"Object contains unknown field `([^`]+)`", r"unknown key '\1'", message
    )
    message, missing = re.subn(
        r"Object missing required field `([^`]+)`", r"missing key '\1'", message
    )
    if match and match.group(1):
        parts = [p for p in re.split(r"\.|\[|\]", match.group(1)) if p]
        if unknown or missing:  # the path names the table the key is (or is not) in
            return f"{message} in [{'.'.join(parts)}]"
        table, key = ".".join(parts[:-1]), parts[-1]
        return f"{message} for {'[' + table + '] ' if table else ''}{key}"
    return message


def parse_program(text: str, *, source: Path) -> ProgramConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: invalid TOML ({exc})") from None
    try:
        config = msgspec.convert(raw, ProgramConfig)
    except msgspec.ValidationError as exc:
        raise UserError(f"{source}: {_where(exc)}") from None
    validate(config, source=source)
    return config


def validate(config: ProgramConfig, *, source: Path) -> None:
    """Checks msgspec's types cannot express; every message names the file."""

    def fail(message: str) -> None:
        raise UserError(f"{source}: {message}")

    if not config.metric.strip():
        fail("'metric' must not be empty")
    for what, value in (
        ("[measure] timeout", config.measure.timeout),
        ("[measure] build_timeout", config.measure.build_timeout),
        ("[agent] timeout", config.agent.timeout),
        ("[agent] failure_window", config.agent.failure_window),
        ("[agent] retry_wait", config.agent.retry_wait),
    ):
        try:
            parse_duration(value, what=what)
        except UserError as exc:
            fail(str(exc))
    decide = config.decide
    if decide.repeats < 1:
        fail("[decide] repeats must be at least 1")
    if decide.min_runs < 1:
        fail("[decide] min_runs must be at least 1")
    if decide.max_runs is not None and decide.max_runs < decide.min_runs:
        fail(f"[decide] max_runs ({decide.max_runs}) must be ≥ min_runs ({decide.min_runs})")
    for key in ("alpha", "beta"):
        value = getattr(decide, key)
        if not (math.isfinite(value) and 0 < value < 0.5):
            fail(f"[decide] {key} must be between 0 and 0.5 (an error rate), not {value!r}")
    if not (math.isfinite(config.decide.min_effect) and config.decide.min_effect >= 0):
        fail("[decide] min_effect must be a number ≥ 0")
    if config.loop.max_experiments < 0:
        fail("[loop] max_experiments must be ≥ 0")
    if config.loop.max_consecutive_discards < 1:
        fail("[loop] max_consecutive_discards must be at least 1")
    if config.agent.kind not in AGENT_KINDS:
        fail(f"[agent] kind {config.agent.kind!r} is not one of {', '.join(AGENT_KINDS)}")
    if config.agent.context_chars < 2000:
        fail("[agent] context_chars must be at least 2000")
    if config.loop.notify is not None and not config.loop.notify.strip():
        fail("[loop] notify must not be empty (leave it out for no notification)")
    if config.agent.max_failures < 1:
        fail("[agent] max_failures must be at least 1")
    if config.agent.kind == "command" and not (config.agent.command or "").strip():
        fail("[agent] kind 'command' needs [agent] command")
    if config.agent.kind == "tune" and not config.tune.params:
        fail("[agent] kind 'tune' needs at least one [tune.params.NAME] table")
    check_arms(config, source=source)
    if not 1 <= config.lanes.count <= MAX_LANES:
        fail(f"[lanes] count must be between 1 and {MAX_LANES}")
    if config.lanes.measure_slots < 1:
        fail("[lanes] measure_slots must be at least 1")
    check_ray_shape(config.lanes, fail)
    for pattern in config.measure.protect:
        if problem := check_pattern(pattern):
            fail(f"[measure] protect: {problem}")
    for name, gate in config.gates.items():
        if gate.min is None and gate.max is None:
            fail(f"[gates] {name} needs min or max")
    for name, param in config.tune.params.items():
        where = f"[tune.params.{name}]"
        try:
            pattern = re.compile(param.pattern, re.MULTILINE)
        except re.error as exc:
            fail(f"{where} pattern is not a valid regular expression ({exc})")
        if pattern.groups != 1:
            fail(f"{where} pattern must have exactly one group (it has {pattern.groups})")
        if param.type == "choice":
            if not param.choices:
                fail(f"{where} type 'choice' needs choices")
        else:
            if param.low is None or param.high is None:
                fail(f"{where} type {param.type!r} needs low and high")
            assert param.low is not None and param.high is not None
            if param.low >= param.high:
                fail(f"{where} low must be below high")
            if param.log and param.low <= 0:
                fail(f"{where} log scale needs low > 0")


def load_program(paths: ProgramPaths) -> ProgramConfig:
    if not paths.dir.is_dir():
        raise UserError(
            f"no program {paths.name!r} (expected {paths.dir}; create it with `expd init`)"
        )
    try:
        text = paths.toml.read_text()
    except FileNotFoundError:
        raise UserError(f"{paths.toml}: missing") from None
    config = parse_program(text, source=paths.toml)
    if not config.measure.command and not paths.measure_sh.exists():
        raise UserError(f"{paths.toml}: no [measure] command and no {paths.measure_sh.name}")
    return config


def file_digests(paths: ProgramPaths) -> dict[str, str]:
    """A hash per evaluator file ("" when absent): a change mid-run makes metrics incomparable."""
    out = {}
    for name in PROGRAM_FILES:
        path = paths.dir / name
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else ""
    return out


def changed_files(paths: ProgramPaths, expected: dict[str, str]) -> list[str]:
    return [name for name, digest in file_digests(paths).items() if expected.get(name) != digest]


PROGRAM_MD = """# {name}

## Goal
Make `{metric}` {better} (as printed by the measurement). Describe here what the metric means and
why it matters.

## In scope
- The files you may change (e.g. `src/`).

## Off limits
- Tests, benchmarks and anything that produces the metric.
- Do not game the metric: the change must be a real improvement.

## Rules
- Make one focused change per experiment and commit it with a message that says what you tried.
"""

MEASURE_SH = """#!/usr/bin/env bash
# Runs with the experiment's worktree as the current directory. Print the metrics either as one
# JSON object line, e.g. {{"{metric}": 1.23}}, or as lines `METRIC {metric}=1.23`.
# A non-zero exit, a timeout or a missing/non-finite metric counts as a failed measurement.
set -euo pipefail
{command}
"""


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def scaffold(
    repo: RepoPaths,
    name: str,
    *,
    measure: str | None,
    metric: str,
    direction: str,
    agent: str,
    model: str | None,
) -> ProgramPaths:
    """Create `.expd/programs/NAME/` and exclude `.expd/` from git; refuses to overwrite."""
    check_program_name(name)
    if direction not in ("lower", "higher"):
        raise UserError(f"invalid direction {direction!r}: use lower or higher")
    if agent not in AGENT_KINDS:
        raise UserError(f"unknown agent kind {agent!r}: use one of {', '.join(AGENT_KINDS)}")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", metric):
        raise UserError(f"invalid metric name {metric!r}")
    lines = [
        f"metric = {_toml_str(metric)}",
        f'direction = "{direction}"',
        "",
        "[measure]",
        'timeout = "60s"',
        "# What the agent must not change (globs from the repository root; ** spans directories):",
        "# a candidate touching one is discarded unmeasured.",
        '# protect = ["bench.py", "tests/**"]',
        "",
        "# sequential: measure candidate and incumbent (interleaved) until the evidence is clear",
        "[decide]",
        'policy = "sequential"',
        "min_effect = 0.02  # the smallest relative gain worth keeping (run `expd validate`)",
        "min_runs = 2",
        "max_runs = 12",
        "alpha = 0.05      # chance of keeping a change that is no better",
        "beta = 0.3        # chance of missing a real gain of min_effect",
        "",
        "[loop]",
        "max_experiments = 20",
        "max_consecutive_discards = 30  # stop after this many non-keeps in a row",
        "",
        "[agent]",
        f'kind = "{agent}"',
    ]
    if model:
        lines.append(f"model = {_toml_str(model)}")
    if agent == "command":
        lines.append('command = "./agent.sh"  # reads the prompt on stdin, edits the worktree')
    lines.append('timeout = "30m"')
    if agent == "tune":
        lines += [
            "",
            "# One table per tunable value: group 1 of `pattern` in `file` is replaced.",
            "[tune.params.example]",
            'file = "config.py"',
            "pattern = 'EXAMPLE = (\\d+)'",
            'type = "int"',
            "low = 1",
            "high = 100",
        ]
    better = "lower" if direction == "lower" else "higher"
    command = measure or f'echo "METRIC {metric}=0"  # replace with your measurement'
    files = {
        "program.toml": "\n".join(lines) + "\n",
        "program.md": PROGRAM_MD.format(name=name, metric=metric, better=better),
        "measure.sh": MEASURE_SH.format(metric=metric, command=command),
    }
    return write_program(repo, name, files)


def write_program(repo: RepoPaths, name: str, files: Mapping[str, str]) -> ProgramPaths:
    """Create `.expd/programs/NAME/` with `files` (program.toml, program.md, measure.sh and
    build.sh, the scripts executable); refuses to overwrite. `expd init` and a draft both end here."""
    check_program_name(name)
    paths = repo.program(name)
    if paths.dir.exists():
        raise UserError(f"program {name!r} already exists at {paths.dir}")
    exclude_expd(repo.root)
    paths.runs_dir.mkdir(parents=True)
    for file, text in files.items():
        if file not in PROGRAM_FILES:
            raise ValueError(f"not a program file: {file}")
        (paths.dir / file).write_text(text)
        if file.endswith(".sh"):
            (paths.dir / file).chmod(0o755)
    return paths


def exclude_expd(root: Path) -> None:
    """List `.expd/` in `.git/info/exclude` (never in the user's tracked .gitignore)."""
    info = root / ".git" / "info"
    info.mkdir(parents=True, exist_ok=True)
    exclude = info / "exclude"
    text = exclude.read_text() if exclude.exists() else ""
    if any(line.strip() in (".expd", ".expd/", "/.expd", "/.expd/") for line in text.splitlines()):
        return
    if text and not text.endswith("\n"):
        text += "\n"
    exclude.write_text(text + "/.expd/\n")


RAY_STANDARD = ("num_cpus", "num_gpus", "memory")


def check_ray_shape(lanes: LanesConfig, fail: Callable[[str], None]) -> None:
    """`[lanes]` Ray settings: shape only (whether Ray is installed is checked at `expd start`)."""
    if lanes.executor != "ray" and (
        lanes.address is not None or lanes.agent_resources or lanes.measure_resources
    ):
        fail("[lanes] address and *_resources need executor = 'ray'")
    if lanes.address is not None and not lanes.address.strip():
        fail("[lanes] address must not be empty (leave it out to start a local instance)")
    for key, table in (
        ("agent_resources", lanes.agent_resources),
        ("measure_resources", lanes.measure_resources),
    ):
        for name, value in table.items():
            if not name or value < 0:
                fail(f"[lanes] {key}: {name!r} = {value!r}: use a non-negative number")
            if name in ("CPU", "GPU", "object_store_memory"):
                fail(f"[lanes] {key}: write num_cpus, num_gpus or memory, not {name!r}")
