"""Reading `bakeoff.toml` (and the task files of its `tasks_dir`) strictly: a typo names its file
and key, never silently changes what is compared."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from shared.bakeoffs.paths import BakeoffPaths, check_id
from shared.bakeoffs.schema import CRITERION_TYPES, BakeoffSpec, Criterion, TaskSpec, VariantSpec
from shared.errors import UserError
from shared.programs import _where, parse_duration
from shared.schema import AGENT_KINDS, SANDBOXES, AgentConfig

TOP_KEYS = {
    "attempts",
    "concurrency",
    "timeout",
    "max_cost_usd",
    "criteria_timeout",
    "criteria_sandbox",
    "tasks_dir",
    "agent",
    "task",
    "variant",
}
TASK_KEYS = {"id", "prompt", "prompt_file", "base", "criteria", "timeout"}
CRITERION_OPTIONS = {"weight", "field", "direction", "min", "max", "timeout"}


class Where:
    """Names the file (and the table in it) an error is about."""

    def __init__(self, source: Path, table: str = "") -> None:
        self.source = source
        self.table = table

    def at(self, table: str) -> Where:
        return Where(self.source, table)

    def error(self, message: str) -> UserError:
        return UserError(f"{self.source}: {message}" + (f" in {self.table}" if self.table else ""))


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: invalid TOML ({exc})") from None


def _unknown(table: dict[str, Any], allowed: set[str], where: Where) -> None:
    for key in table:
        if key not in allowed:
            raise where.error(f"unknown key {key!r}")


def _int(value: Any, key: str, where: Where, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise where.error(f"{key} must be a whole number ≥ {low}, not {value!r}")
    return value


def _duration(value: Any, key: str, where: Where) -> float:
    try:
        return parse_duration(value, what=key)
    except UserError as exc:
        raise where.error(str(exc)) from None


def _number(value: Any, key: str, where: Where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(f"{key} must be a number, not {value!r}")
    return float(value)


def parse_criterion(entry: Any, where: Where) -> Criterion:
    """`"type:target"`, or a table with one type key and options (`weight`, `field`, …)."""
    if isinstance(entry, str):
        kind, sep, target = entry.partition(":")
        kind = kind.strip()
        if not sep or kind not in CRITERION_TYPES:
            raise where.error(
                f"criterion {entry!r}: write TYPE:TARGET with TYPE one of {', '.join(CRITERION_TYPES)}"
            )
        options: dict[str, Any] = {}
    elif isinstance(entry, dict):
        kinds = [k for k in entry if k in CRITERION_TYPES]
        if len(kinds) != 1:
            raise where.error(
                f"criterion {entry!r}: a table needs exactly one of {', '.join(CRITERION_TYPES)}"
            )
        kind = kinds[0]
        target = entry[kind]
        if not isinstance(target, str):
            raise where.error(f"criterion {kind} must be a string, not {target!r}")
        options = {k: v for k, v in entry.items() if k != kind}
        _unknown(options, CRITERION_OPTIONS, where)
    else:
        raise where.error(f"criterion {entry!r}: a string TYPE:TARGET or a table")
    target = target.strip()
    if not target:
        raise where.error(f"criterion {kind}: empty target")
    criterion = Criterion(type=kind, target=target)
    if "weight" in options:
        criterion.weight = _number(options["weight"], "weight", where)
        if criterion.weight <= 0:
            raise where.error(f"criterion {kind}: weight must be > 0")
    metric_only = {"field", "direction", "min", "max"} & options.keys()
    if metric_only and kind != "metric":
        raise where.error(f"criterion {kind}: {sorted(metric_only)[0]!r} is for metric criteria")
    if "field" in options:
        if not isinstance(options["field"], str) or not options["field"]:
            raise where.error("criterion metric: field must be a non-empty string")
        criterion.field = options["field"]
    if "direction" in options:
        if options["direction"] not in ("lower", "higher"):
            raise where.error("criterion metric: direction must be 'lower' or 'higher'")
        criterion.direction = options["direction"]
    for bound in ("min", "max"):
        if bound in options:
            setattr(criterion, bound, _number(options[bound], bound, where))
    if "timeout" in options:
        if kind not in ("test_pass", "command", "metric"):
            raise where.error(f"criterion {kind}: timeout is for commands")
        criterion.timeout_s = _duration(options["timeout"], "timeout", where)
    return criterion


def parse_task(
    table: Any, where: Where, *, base_dir: Path, default_id: str | None = None
) -> TaskSpec:
    if not isinstance(table, dict):
        raise where.error("[[task]] must be a table")
    task_id = table.get("id", default_id)
    if not isinstance(task_id, str):
        raise where.error("missing key 'id'")
    try:
        check_id(task_id, "task id")
    except UserError as exc:
        raise where.error(str(exc)) from None
    where = where.at(f"[[task]] {task_id!r}")
    _unknown(table, TASK_KEYS, where)
    prompt = table.get("prompt")
    prompt_file = table.get("prompt_file")
    if (prompt is None) == (prompt_file is None):
        raise where.error("give exactly one of 'prompt' and 'prompt_file'")
    if prompt_file is not None:
        if not isinstance(prompt_file, str):
            raise where.error("prompt_file must be a path")
        path = base_dir / prompt_file
        try:
            prompt = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise where.error(f"prompt_file {prompt_file!r} cannot be read ({exc})") from None
    if not isinstance(prompt, str) or not prompt.strip():
        raise where.error("the prompt is empty")
    base = table.get("base", "")
    if not isinstance(base, str):
        raise where.error("base must be a commit-ish string")
    criteria = table.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        raise where.error("missing key 'criteria' (a list with at least one criterion)")
    task = TaskSpec(
        id=task_id,
        prompt=prompt,
        base_ref=base.strip(),
        criteria=[parse_criterion(c, where) for c in criteria],
        source=str(where.source),
    )
    if "timeout" in table:
        task.timeout_s = _duration(table["timeout"], "timeout", where)
    return task


def parse_variant(table: Any, defaults: dict[str, Any], where: Where) -> VariantSpec:
    if not isinstance(table, dict):
        raise where.error("[[variant]] must be a table")
    variant_id = table.get("id")
    if not isinstance(variant_id, str):
        raise where.error("missing key 'id' in [[variant]]")
    try:
        check_id(variant_id, "variant id")
    except UserError as exc:
        raise where.error(str(exc)) from None
    where = where.at(f"[[variant]] {variant_id!r}")
    prefix = table.get("prompt_prefix", "")
    if not isinstance(prefix, str):
        raise where.error("prompt_prefix must be a string")
    agent = {**defaults, **{k: v for k, v in table.items() if k not in ("id", "prompt_prefix")}}
    try:
        config = msgspec.convert(agent, AgentConfig)
    except msgspec.ValidationError as exc:
        raise where.error(_where(exc)) from None
    if config.kind not in AGENT_KINDS:
        raise where.error(
            f"unknown agent kind {config.kind!r}: use one of {', '.join(AGENT_KINDS)}"
        )
    if config.kind == "tune":
        raise where.error("agent kind 'tune' tunes a program's parameters: it cannot do tasks")
    if config.kind == "command" and not (config.command or "").strip():
        raise where.error("agent kind 'command' needs 'command'")
    if config.sandbox not in SANDBOXES:
        raise where.error(f"sandbox must be one of {', '.join(SANDBOXES)}")
    _duration(config.timeout, "timeout", where)
    return VariantSpec(id=variant_id, prompt_prefix=prefix, agent=agent)


def parse_bakeoff(paths: BakeoffPaths) -> BakeoffSpec:
    """The bakeoff's spec with prompts read and criteria parsed; bases are still as written
    (the start resolves them to commits)."""
    where = Where(paths.toml)
    raw = _toml(paths.toml)
    _unknown(raw, TOP_KEYS, where)
    spec = BakeoffSpec()
    if "attempts" in raw:
        spec.attempts = _int(raw["attempts"], "attempts", where)
    if "concurrency" in raw:
        spec.concurrency = _int(raw["concurrency"], "concurrency", where)
    if "timeout" in raw:
        spec.timeout_s = _duration(raw["timeout"], "timeout", where)
    if "criteria_timeout" in raw:
        spec.criteria_timeout_s = _duration(raw["criteria_timeout"], "criteria_timeout", where)
    if "max_cost_usd" in raw:
        spec.max_cost_usd = _number(raw["max_cost_usd"], "max_cost_usd", where)
        if spec.max_cost_usd < 0:
            raise where.error("max_cost_usd must be ≥ 0")
    if "criteria_sandbox" in raw:
        if raw["criteria_sandbox"] not in SANDBOXES:
            raise where.error(f"criteria_sandbox must be one of {', '.join(SANDBOXES)}")
        spec.criteria_sandbox = raw["criteria_sandbox"]
    defaults = raw.get("agent", {})
    if not isinstance(defaults, dict):
        raise where.error("[agent] must be a table")
    variants = raw.get("variant", [])
    if not isinstance(variants, list) or not variants:
        raise where.error("no [[variant]]: a bakeoff compares at least one agent setup")
    spec.variants = [parse_variant(v, defaults, where) for v in variants]
    tasks = raw.get("task", [])
    if not isinstance(tasks, list):
        raise where.error("[[task]] must be an array of tables")
    spec.tasks = [parse_task(t, where, base_dir=paths.dir) for t in tasks]
    if "tasks_dir" in raw:
        spec.tasks += _tasks_dir(raw["tasks_dir"], paths, where)
    if not spec.tasks:
        raise where.error("no tasks: add [[task]] tables or a tasks_dir")
    _unique([t.id for t in spec.tasks], "task id", where)
    _unique([v.id for v in spec.variants], "variant id", where)
    return spec


def _tasks_dir(value: Any, paths: BakeoffPaths, where: Where) -> list[TaskSpec]:
    if not isinstance(value, str) or not value:
        raise where.error("tasks_dir must be a folder (relative to the bakeoff's)")
    folder = paths.dir / value
    if not folder.is_dir():
        raise where.error(f"tasks_dir {value!r}: no such folder ({folder})")
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise where.error(f"tasks_dir {value!r}: no *.toml task files in {folder}")
    return [parse_task(_toml(f), Where(f), base_dir=f.parent, default_id=f.stem) for f in files]


def _unique(ids: list[str], what: str, where: Where) -> None:
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            raise where.error(f"duplicate {what} {value!r}")
        seen.add(value)


def load_bakeoff(paths: BakeoffPaths) -> BakeoffSpec:
    check_id(paths.name, "bakeoff name")
    if not paths.toml.is_file():
        raise UserError(
            f"no bakeoff {paths.name!r} in {paths.repo} (create it with: expd bakeoff init {paths.name})"
        )
    return parse_bakeoff(paths)


TEMPLATE = """\
# A bakeoff: every [[variant]] (an agent setup) does every [[task]] `attempts` times; each attempt
# is scored by the task's criteria, in a tree expd checks out at the attempt's commit.
# See docs/bakeoffs.md. Start it with: expd bakeoff start {name}

attempts = 1            # per task × variant (more attempts: tighter intervals)
concurrency = 2         # attempts at once
timeout = "30m"         # per attempt (the agent's time)
# max_cost_usd = 5.0    # stop starting attempts once the bakeoff has cost this much
# criteria_timeout = "10m"
# tasks_dir = "tasks"   # one TOML file per task (id = file name): prompt, base, criteria

[agent]                 # defaults for every variant (any [agent] key of program.toml)
timeout = "30m"

[[variant]]
id = "baseline"
kind = "command"
command = "cat > /dev/null  # replace with your agent, e.g. kind = \\"claude\\""

[[variant]]
id = "careful"
kind = "command"
command = "cat > /dev/null"
prompt_prefix = "Work carefully and run the tests before you finish.\\n\\n"

[[task]]
id = "example"
prompt = "Describe the task for the agent here."
# base = "HEAD"          # the commit the attempts start from (default: HEAD at start)
criteria = [
  "command:true",        # exit 0 in a checkout of the attempt's commit
  # "test_pass:python -m pytest -q",
  # "file_exists:docs/CHANGELOG.md",
  # "contains:DONE",     # in the agent's final answer
  # "manual:Is the change idiomatic?",
  # {{ metric = "python bench.py", field = "ms", direction = "lower" }},
]
"""


def scaffold(paths: BakeoffPaths) -> Path:
    """`expd bakeoff init NAME`: a commented bakeoff.toml to edit; refuses to overwrite."""
    check_id(paths.name, "bakeoff name")
    if paths.toml.exists():
        raise UserError(f"bakeoff {paths.name!r} already exists: {paths.toml}")
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.toml.write_text(TEMPLATE.format(name=paths.name), encoding="utf-8")
    return paths.toml
