"""The file formats shared by the daemon, the CLI and the TUI.

Files the daemon writes (state, results, events, daemon info) are decoded leniently: every field has
a default and unknown fields are ignored, so an older reader survives a newer writer. `program.toml`
is typed by people, so its structs forbid unknown fields: a typo must not silently change behaviour.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SCHEMA_VERSION = 1

PHASES = (
    "starting",
    "baseline",
    "agent_running",
    "measuring",
    "reverting",
    "idle",
    "stopping",
    "complete",
    "crashed",
)
TERMINAL_PHASES = frozenset({"complete", "crashed"})
STATUSES = ("baseline", "keep", "discard", "crash", "measurement_failure")
TERMINATION_REASONS = (
    "max_experiments",
    "stagnation",
    "budget",
    "stopped",
    "aborted",
    "agent_unavailable",
    "error",
)
AGENT_KINDS = ("command", "tune", "claude", "codex", "opencode", "openai")
SANDBOXES = ("auto", "bwrap", "landlock", "none")
CONFINED = frozenset({"bwrap", "landlock"})
"""The sandboxes that confine the agent (`none` does not)."""


# --------------------------------------------------------------------------- program.toml


class _Typed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for structs people write by hand."""


class MeasureConfig(_Typed):
    command: str | None = None
    timeout: str | float = "60s"
    build: str | None = None
    build_timeout: str | float = "10m"
    protect: list[str] = []
    """Globs (from the repository root, `**` spans directories) of paths a candidate must not
    touch: one that adds, changes, deletes or renames them is discarded unmeasured."""
    sandbox: Literal["auto", "bwrap", "landlock", "none"] = "auto"
    """What confines the build and the measurement (they run the agent's committed code)."""
    writable: list[str] = []
    """Extra paths the measurement may write (a cache folder; `~` expanded, relative ones from
    the repository root)."""


class DecideConfig(_Typed):
    """`[decide]`: `sequential` measures until the evidence is clear (between `min_runs` and
    `max_runs` candidate runs, error rates `alpha`/`beta`); `fixed` takes `repeats` runs."""

    policy: Literal["sequential", "fixed"] = "sequential"
    min_effect: float = 0.02
    repeats: int = 3
    """For `fixed` only."""
    min_runs: int = 2
    max_runs: int | None = None
    """For `sequential`; None means 12."""
    alpha: float = 0.05
    beta: float = 0.3


class Gate(_Typed):
    min: float | None = None
    max: float | None = None


class LoopConfig(_Typed):
    max_experiments: int = 20
    max_consecutive_discards: int = 30
    max_cost_usd: float | None = None
    keep_simplifications: bool = False
    notify: str | None = None
    """A shell command run when the run ends (EXPD_RUN_ID, EXPD_REASON, … in its environment)."""
    keep_tree: bool | Literal["on_crash", "always", "never"] = "on_crash"
    """The run's trees when it ends: kept only when it crashed (the default: a finished run's tree
    is its branch's tip), `always` (true) or `never` (false)."""


class Price(_Typed):
    """USD per million tokens, for agents whose CLI reports tokens but not cost."""

    input: float
    output: float
    cached_input: float | None = None


class AgentConfig(_Typed):
    kind: str = "command"
    model: str | None = None
    command: str | None = None
    max_turns: int | None = None
    timeout: str | float = "30m"
    fallback_model: str | None = None
    """Switched to when the provider reports the quota of `model` exhausted."""
    base_url: str | None = None
    api_key_env: str | None = None
    """The name of the environment variable holding the key (the key is never written down)."""
    max_tokens: int | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    prices: dict[str, Price] = {}
    max_failures: int = 3
    failure_window: str | float = "10m"
    retry_wait: str | float = "10s"
    context_chars: int = 12_000
    """The budget of the context packet each agent receives, in characters."""
    sandbox: Literal["auto", "bwrap", "landlock", "none"] = "auto"
    """What confines the agent: `auto` is bwrap if it works here, else Landlock, else none."""
    temperature: float | None = None
    """`openai`: the sampling temperature (None: the endpoint's default)."""
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    """Reasoning effort: `codex` (`model_reasoning_effort`) and `openai` (`reasoning_effort`)."""


class ArmsPolicy(_Typed):
    """`[arms_policy]`: how experiments are shared between `[[arms]]`."""

    allocation: Literal["round_robin", "thompson"] = "thompson"
    """`thompson` samples each arm's probability of a keep per dollar and picks the best draw;
    `round_robin` takes turns."""
    min_share: float = 0.1
    """The floor: an arm below this share of the experiments is picked next (none starves)."""
    seed: int | None = None
    """For Thompson's draws (None: a fresh seed per run)."""


class LanesConfig(_Typed):
    """`[lanes]`: several agent turns at once in one run (docs/lanes.md)."""

    count: int = 1
    """Agent turns running at once (1: one after the other, as without lanes)."""
    executor: Literal["local", "ray"] = "local"
    """Where turns and measurements run: `local` (this machine) or `ray` (tasks on a Ray cluster)."""
    address: str | None = None
    """With `ray`: "auto", "ray://host:port" or "host:port" to join a cluster; none starts a
    private local instance."""
    agent_resources: dict[str, float] = {}
    """With `ray`: what one agent turn asks of a node (num_cpus, num_gpus, memory, custom)."""
    measure_resources: dict[str, float] = {}
    """With `ray`: what one measurement asks of a node, e.g. {num_gpus = 1} or {bench_host = 1}."""
    measure_slots: int = 1
    """Measurements at once; each slot is exclusive, so two never share what makes them noisy."""
    overlap_measurement: bool = True
    """Whether agent turns may run while a measurement does (false: load-sensitive benchmarks)."""


class TuneParam(_Typed):
    """One tunable value: group 1 of `pattern` in `file` (relative to the worktree)."""

    file: str
    pattern: str
    type: Literal["int", "float", "choice"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[str | int | float | bool] | None = None


class TuneConfig(_Typed):
    params: dict[str, TuneParam] = {}
    seed: int | None = None
    sampler: Literal["tpe", "random"] = "tpe"


class ProgramConfig(_Typed):
    metric: str
    direction: Literal["lower", "higher"]
    measure: MeasureConfig = msgspec.field(default_factory=MeasureConfig)
    decide: DecideConfig = msgspec.field(default_factory=DecideConfig)
    gates: dict[str, Gate] = {}
    secondary: dict[str, Literal["lower", "higher"]] = {}
    loop: LoopConfig = msgspec.field(default_factory=LoopConfig)
    agent: AgentConfig = msgspec.field(default_factory=AgentConfig)
    tune: TuneConfig = msgspec.field(default_factory=TuneConfig)
    arms: list[dict[str, Any]] = []
    """`[[arms]]`: `id`, any `[agent]` key, `prompt_addendum` — checked and resolved by
    `shared.arms.arms_of` (an arm's keys override `[agent]`)."""
    arms_policy: ArmsPolicy = msgspec.field(default_factory=ArmsPolicy)
    lanes: LanesConfig = msgspec.field(default_factory=LanesConfig)


# --------------------------------------------------------------------------- daemon-written files


class _Lenient(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Base for files the daemon writes: unknown fields are ignored, every field has a default."""


class RunManifest(_Lenient):
    """`run.json`: written once by `expd start`; what the run is."""

    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    program: str = ""
    repo: str = ""
    program_dir: str = ""
    worktree: str = ""
    branch: str = ""
    base_commit: str = ""
    program_files: dict[str, str] = {}
    created_at: float = 0.0
    expd_version: str = ""
    config: dict[str, Any] = {}
    max_experiments: int = 20
    agent_kind: str = "command"
    agent_model: str | None = None
    calibration: dict[str, Any] = {}
    """A recent `expd validate` of the same program files (`calibration.json`), or empty."""
    carry_forward: str = ""
    """A summary of the program's earlier runs for the agents (empty with `--fresh`)."""
    sandbox: str = ""
    """The sandbox `expd start` found for the agent (bwrap, landlock or none; empty: older run)."""
    measure_sandbox: str = ""
    """The sandbox `expd start` found for the measurement (as `sandbox`)."""


class InFlight(_Lenient):
    """The experiment the daemon is working on; on resume it is recorded as interrupted."""

    experiment: int = 0
    started_at: float = 0.0
    stage: str = ""
    commit: str | None = None
    pgid: int | None = None
    arm: str | None = None
    """The arm running it (None: the program has no arms)."""


class ArmStats(_Lenient):
    """One arm's outcomes so far in a run (rebuilt from results.jsonl on resume)."""

    id: str = ""
    experiments: int = 0
    keeps: int = 0
    errors: int = 0
    """Crashes: the agent failed, produced nothing or was interrupted."""
    improvement_pct: float = 0.0
    """The sum of its keeps' gains, each relative to the incumbent it beat (positive: better)."""
    cost_usd: float = 0.0
    tokens: int = 0
    agent_s: float = 0.0
    paused: str = ""
    """Why the arm gets no experiments now (its provider is unavailable); empty: it runs."""


class LaneState(_Lenient):
    """One lane of a run with `[lanes] count` > 1: what it is doing now."""

    lane: int = 0
    phase: str = "idle"
    """idle | agent_running | waiting (for a measurement slot) | measuring | paused"""
    experiment: int | None = None
    since: float = 0.0
    node: str = ""
    """Where its current work runs (the host name for the local executor)."""
    paused: str = ""
    in_flight: InFlight | None = None
    """The lane's experiment, as `RunState.in_flight` is for a run without lanes: recorded as
    interrupted on resume."""


class RunState(_Lenient):
    """`state.json`: the daemon's whole view of the run, replaced atomically on every change."""

    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    program: str = ""
    phase: str = "starting"
    detail: str = ""
    experiment: int = 0
    max_experiments: int = 20
    keeps: int = 0
    discards: int = 0
    crashes: int = 0
    measurement_failures: int = 0
    consecutive_non_keeps: int = 0
    metric: str = ""
    direction: str = "lower"
    baseline: float | None = None
    best: float | None = None
    best_experiment: int | None = None
    incumbent_commit: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    started_at: float = 0.0
    updated_at: float = 0.0
    termination_reason: str | None = None
    message: str = ""
    in_flight: InFlight | None = None
    acked: list[str] = []
    results_count: int = 0
    guidance: str = ""
    resumes: int = 0
    drift: str = ""
    """What the policy saw when the incumbent's interleaved runs shifted (empty: no drift)."""
    drift_at_experiment: int | None = None
    noise: str = ""
    """The policy's or the baseline's note that the measurement noise hides small gains."""
    pool: list[float] = []
    """The incumbent pool: its recent primary-metric samples, as the last recorded result left it
    (the next decision compares against it)."""
    sandbox: str = ""
    """The sandbox the daemon confines the agent with (bwrap, landlock or none; empty: older)."""
    measure_sandbox: str = ""
    """The sandbox the daemon confines the build and the measurement with (as `sandbox`)."""
    lanes: list[LaneState] = []
    """Per-lane activity (empty: the run has one lane)."""
    arm_stats: list[ArmStats] = []
    """Per-arm outcomes, in the order of `[[arms]]` (empty: the program has no arms). Not named
    `arms`: state files in the wild may carry an unrelated field of that name."""
    baseline_samples: list[float] = []
    """Every run of the base commit (the baseline's and, until the first keep, the interleaved
    ones): what `baseline` is estimated from."""
    incumbent_samples: list[float] = []
    """The incumbent's runs that did not select it (measured after its keep, or since drift):
    what `best` is estimated from; empty right after a keep."""
    best_ci: list[float] | None = None
    """`[low, high]`: 95 % interval of `best` (None: not estimated, e.g. an older run)."""
    improvement_pct: float | None = None
    """The estimated improvement of `best` over `baseline`, positive = better (None: an older
    run, where it is computed from the two values)."""
    improvement_ci: list[float] | None = None
    """95 % interval of `improvement_pct`, in percent."""
    best_runs: int = 0
    """Runs behind `best` (0 right after a keep: then it is the keep's estimate, shrunk)."""
    estimates: bool = False
    """`baseline`/`best` are estimates from unselected runs (False: a run whose baseline record
    predates them keeps the old meaning, the kept candidate's median)."""


class DiffStat(_Lenient):
    files: list[str] = []
    added: int = 0
    removed: int = 0


class ResultRecord(_Lenient):
    """One line of `results.jsonl`: an experiment's outcome and the evidence for its decision."""

    experiment: int = 0
    status: str = ""
    commit: str | None = None
    parent: str | None = None
    metric: float | None = None
    samples: list[float] = []
    metrics: dict[str, float] = {}
    description: str = ""
    diff: DiffStat = msgspec.field(default_factory=DiffStat)
    agent_s: float = 0.0
    measure_s: float = 0.0
    cost_usd: float = 0.0
    tokens: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    reason: str = ""
    evidence: dict[str, Any] = {}
    """What the decision was based on, as stored: read and written through `shared.evidence`,
    which types it by policy (msgspec cannot decode `{}` or an unknown policy as a tagged union)."""
    session_id: str | None = None
    arm: str | None = None
    """The arm that made the change (None: the program has no arms; the baseline)."""
    lane: int | None = None
    """The lane whose agent made the change (None: the run has one lane; the baseline)."""
    made_against: str | None = None
    """The incumbent the agent's turn started from, when it differs from `parent` (the incumbent
    the candidate was replayed onto, measured and decided against)."""


class Event(_Lenient):
    """One line of `events.jsonl`: the run's typed transcript."""

    t: float = 0.0
    kind: str = ""
    experiment: int | None = None
    data: dict[str, Any] = {}


class ControlRequest(_Lenient):
    id: str = ""
    action: str = ""
    key: str | None = None
    value: Any = None
    created_at: float = 0.0
    source: str = ""
    seal: str = ""
    """HMAC of the request with the run's key (shared/control.py): the daemon ignores requests
    expd's own writer did not seal, in runs that have a key."""


class ControlFile(_Lenient):
    """`control.json`: pending requests; the daemon acknowledges ids in `state.json`."""

    requests: list[ControlRequest] = []


class DaemonInfo(_Lenient):
    """`daemon.json`: who the daemon is and when it last proved it was responsive."""

    pid: int = 0
    token: str = ""
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    heartbeat_interval: float = 2.0
    version: str = ""
    hostname: str = ""


class IndexEntry(_Lenient):
    """One run in the user-wide index that lets `expd status --all` work from anywhere."""

    run_id: str = ""
    run_dir: str = ""
    repo: str = ""
    created_at: float = 0.0
