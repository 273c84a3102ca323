"""`tune` agent: offline parameter search with Optuna's ask/tell, no LLM and no API key.

Each experiment asks the study for values of the parameters declared in `program.toml`
(`[tune.params.NAME]`), writes them into group 1 of each parameter's pattern and commits. The
daemon measures and decides as for any agent; `feedback` tells the study what was observed, so
later proposals learn. The study is a SQLite file in the run directory: a restarted daemon (even
after `kill -9`) continues the same search, and `recover` fails trials that were never told.

Optuna is imported lazily and every Optuna/SQLite/git call runs in a worker thread, so the event
loop (heartbeats, control requests) never blocks on them.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread
import msgspec

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentOutcome,
    AgentTask,
    AgentUnavailable,
    Emit,
    Final,
    Text,
)
from daemon.agents.tune_params import (
    Param,
    TuneError,
    Value,
    check_param,
    current_values,
    format_value,
    read_files,
    render,
)
from daemon.ops.git.cli import GitError, commit_files
from shared.paths import RunPaths
from shared.schema import ProgramConfig, ResultRecord, RunManifest
from shared.tail import read_complete_lines

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

STUDY_NAME = "expd-tune"
MAX_ASKS = 20
"""Proposals per experiment before giving up when each would change nothing or repeat a trial."""

EXPERIMENT_ATTR = "experiment"
SKIPPED_ATTR = "skipped"
INCUMBENT_ATTR = "incumbent"
"""Study user attribute: the metric of the last kept commit (or the baseline), survives restarts."""

GIT_IDENTITY = ("-c", "user.name=expd", "-c", "user.email=expd@localhost")
FAILED_STATUSES = frozenset({"crash", "measurement_failure"})


class TuneAgent:
    """Proposes parameter values with Optuna; one trial per experiment, told its measured metric."""

    kind = "tune"

    def __init__(
        self, config: ProgramConfig, *, run_dir: Path, worktree: Path | None = None
    ) -> None:
        self.config = config
        self.paths = RunPaths(Path(run_dir))
        self.params: list[Param] = []
        for name, spec in config.tune.params.items():
            check_param(name, spec)
            self.params.append(Param(name, spec, re.compile(spec.pattern, re.MULTILINE)))
        if not self.params:
            raise AgentUnavailable("the tune agent needs at least one [tune.params.NAME] table")
        self.direction = "minimize" if config.direction == "lower" else "maximize"
        self.worktree = worktree
        self._study: optuna.Study | None = None
        self._trials: dict[int, int] = {}
        self._lock = anyio.Lock()

    # ------------------------------------------------------------------ study (worker thread)

    def _load(self) -> optuna.Study:
        """Open (or create) the study; call only from a worker thread."""
        if self._study is not None:
            return self._study
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.paths.dir.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            storage=f"sqlite:///{self.paths.tune_db}",
            study_name=STUDY_NAME,
            direction=self.direction,
            load_if_exists=True,
        )
        # Offset the seed by the trials already stored: a restarted daemon must not replay the
        # proposals its predecessor already made, yet a fresh run stays reproducible.
        seed = self.config.tune.seed
        if seed is not None:
            seed += len(study.get_trials(deepcopy=False))
        study.sampler = self._sampler(seed)
        self._reconcile(study)
        self._study = study
        return study

    def _reconcile(self, study: optuna.Study) -> None:
        """Catch up with `results.jsonl`, the daemon's record of truth, after a restart.

        A daemon killed between recording a result and calling `feedback` leaves the trial
        RUNNING and the incumbent stale; the recorded outcome is still the right thing to tell.
        """
        from optuna.trial import TrialState

        records: dict[int, ResultRecord] = {}
        incumbent = None
        for line in read_complete_lines(self.paths.results):
            try:
                record = msgspec.json.decode(line, type=ResultRecord)
            except msgspec.DecodeError:
                continue
            records[record.experiment] = record
            if record.status in ("baseline", "keep") and _finite(record.metric) is not None:
                incumbent = record.metric
        if incumbent is not None and incumbent != self._incumbent(study):
            study.set_user_attr(INCUMBENT_ATTR, incumbent)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            record = records.get(trial.user_attrs.get(EXPERIMENT_ATTR, -1))
            if record is not None:
                self._tell(study, trial.number, record)

    def _sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        import optuna

        if self.config.tune.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        # Few random start-up trials: tune runs are short (tens of experiments), and the baseline
        # is already one observation, so the model should start guiding early.
        startup = min(10, max(3, 2 * len(self.params)))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna's search space, built from the declarations in `program.toml`."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, BaseDistribution] = {}
        for param in self.params:
            spec = param.spec
            if spec.type == "choice":
                out[param.name] = CategoricalDistribution(list(spec.choices or []))
            elif spec.type == "int":
                assert spec.low is not None and spec.high is not None
                out[param.name] = IntDistribution(
                    int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1)
                )
            else:
                assert spec.low is not None and spec.high is not None
                out[param.name] = FloatDistribution(
                    spec.low, spec.high, log=spec.log, step=spec.step
                )
        return out

    def _incumbent(self, study: optuna.Study) -> float | None:
        value = study.user_attrs.get(INCUMBENT_ATTR)
        return float(value) if isinstance(value, int | float) else None

    def _find_trial(self, study: optuna.Study, experiment: int) -> int | None:
        """The trial proposed for `experiment`: from memory, else from the study (after restart)."""
        if experiment in self._trials:
            return self._trials[experiment]
        for trial in reversed(study.get_trials(deepcopy=False)):
            # Proposals skipped as repeats share the attribute but were told at once.
            attrs = trial.user_attrs
            if attrs.get(EXPERIMENT_ATTR) == experiment and SKIPPED_ATTR not in attrs:
                return trial.number
        return None

    # ------------------------------------------------------------------ files

    def current_values(self, texts: dict[str, str]) -> dict[str, Value | None]:
        """What the files hold now (None where the text is not a value of the declared type)."""
        return current_values(self.params, texts)

    # ------------------------------------------------------------------ Agent protocol

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        self.worktree = task.worktree
        emit(Text(text=f"tune: proposing values for {', '.join(p.name for p in self.params)}"))

        def emit_from_thread(event: AgentEvent) -> None:
            anyio.from_thread.run_sync(emit, event)

        async with self._lock:
            try:
                result = await anyio.to_thread.run_sync(self._propose, task, emit_from_thread)
            except TuneError as exc:
                emit(AgentErrorEvent(message=str(exc)))
                return AgentOutcome(error=str(exc))
        return result

    def _propose(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        """Ask until a proposal changes the files, write it and commit (worker thread)."""
        from optuna.trial import TrialState

        texts = read_files(self.params, task.worktree)
        self.current_values(texts)  # every pattern must match before a trial is asked
        study = self._load()
        for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # Experiments run one at a time: an earlier trial still running was never told.
            if stale.user_attrs.get(EXPERIMENT_ATTR, task.experiment) < task.experiment:
                study.tell(stale.number, state=TrialState.FAIL, skip_if_finished=True)
        distributions = self.distributions()
        incumbent = self._incumbent(study)
        seen = {
            _key(t.params): t.value
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None
        }
        for attempt in range(1, MAX_ASKS + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = study.ask(fixed_distributions=distributions)
            trial.set_user_attr(EXPERIMENT_ATTR, task.experiment)
            values: dict[str, Value] = dict(trial.params)
            shown = ", ".join(
                f"{p.name}={format_value(p.spec, values[p.name])}" for p in self.params
            )
            rendered = render(self.params, texts, values)
            known = seen.get(_key(values))
            if rendered == texts or known is not None:
                # Nothing to measure: record what is already known so the sampler moves on.
                why = "the current values" if rendered == texts else "an already measured trial"
                value = incumbent if rendered == texts and incumbent is not None else known
                trial.set_user_attr(SKIPPED_ATTR, why)
                emit(Text(text=f"trial {trial.number}: {shown} repeats {why}; asking again"))
                if value is None:
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, value)
                continue
            emit(Text(text=f"trial {trial.number} (proposal {attempt}): {shown}"))
            try:
                self._write_and_commit(task.worktree, texts, rendered, shown, emit)
            except OSError as exc:
                study.tell(trial, state=TrialState.FAIL)
                raise TuneError(f"cannot write the proposal: {exc}") from None
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            self._trials[task.experiment] = trial.number
            description = f"tune: {shown}"
            emit(Final(description=description))
            return AgentOutcome(
                description=description,
                extra={"trial": trial.number, "params": values},
            )
        message = "no new parameter values to try"
        emit(AgentErrorEvent(message=f"{message} (after {MAX_ASKS} proposals)"))
        return AgentOutcome(error=message)

    def _write_and_commit(
        self,
        worktree: Path,
        before: dict[str, str],
        after: dict[str, str],
        shown: str,
        emit: Emit,
    ) -> None:
        changed = [name for name, text in after.items() if text != before[name]]
        for name in changed:
            (worktree / name).write_text(after[name])
            emit(Text(text=f"wrote {name}"))
        try:
            commit = commit_files(worktree, changed, f"tune: {shown}", GIT_IDENTITY)
        except GitError as exc:
            raise TuneError(str(exc)) from None
        emit(Text(text=f"committed {commit}"))

    async def feedback(self, record: ResultRecord) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._feedback, record)

    def _feedback(self, record: ResultRecord) -> None:
        """Tell the experiment's trial; the baseline and keeps also set the incumbent (thread)."""
        study = self._load()
        metric = _finite(record.metric)
        if record.status == "baseline":
            if metric is not None:
                study.set_user_attr(INCUMBENT_ATTR, metric)
                self._seed_baseline(study, metric)
            return
        if record.status == "keep" and metric is not None:
            study.set_user_attr(INCUMBENT_ATTR, metric)
        number = self._find_trial(study, record.experiment)
        if number is not None:
            self._tell(study, number, record)
        self._trials.pop(record.experiment, None)

    def _tell(self, study: optuna.Study, number: int, record: ResultRecord) -> None:
        from optuna.trial import TrialState

        metric = _finite(record.metric)
        if record.status in FAILED_STATUSES or metric is None:
            study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        else:
            # A discard's metric is a true observation too: telling it is how the search learns.
            study.tell(number, metric, skip_if_finished=True)

    def _seed_baseline(self, study: optuna.Study, metric: float) -> None:
        """Add the starting values as a completed trial, if they lie inside the search space."""
        import optuna

        if any(t.user_attrs.get(EXPERIMENT_ATTR) == 0 for t in study.get_trials(deepcopy=False)):
            return
        worktree = self.worktree or self._manifest_worktree()
        if worktree is None:
            return
        try:
            current = self.current_values(read_files(self.params, worktree))
        except TuneError:
            return
        if any(value is None for value in current.values()):
            return
        try:
            # create_trial checks that each value lies inside its distribution.
            trial = optuna.trial.create_trial(
                params=current,
                distributions=self.distributions(),
                value=metric,
                user_attrs={EXPERIMENT_ATTR: 0},
            )
        except ValueError:
            return
        study.add_trial(trial)

    def _manifest_worktree(self) -> Path | None:
        try:
            manifest = msgspec.json.decode(self.paths.run_json.read_bytes(), type=RunManifest)
        except (OSError, msgspec.DecodeError):
            return None
        return Path(manifest.worktree) if manifest.worktree else None

    async def recover(self, interrupted: int) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._recover)

    def _recover(self) -> None:
        """Fail every trial that was asked but never told (the daemon died in between)."""
        from optuna.trial import TrialState

        study = self._load()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        self._trials.clear()

    def switch_model(self, model: str) -> None:
        """No model to switch: this agent never reports a provider failure."""

    async def close(self) -> None:
        self._study = None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))
