"""What to do when the agent's provider fails: wait and retry, switch model, or give up.

Provider failures (auth, quota, rate limit, transient, other) never consume an experiment number:
the same experiment is retried. A pure object, so its rules are unit-tested without a daemon.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from shared.programs import parse_duration
from shared.schema import AgentConfig

ERROR_CLASSES = ("auth", "quota", "rate_limit", "transient", "other")


@dataclass(frozen=True)
class Retry:
    wait_s: float
    switch_model: str | None = None
    note: str = ""


@dataclass(frozen=True)
class GiveUp:
    message: str


@dataclass
class RetryPolicy:
    fallback_model: str | None = None
    max_failures: int = 3
    """Generic (transient/other) failures tolerated within `window_s` before the run stops."""
    window_s: float = 600.0
    base_wait_s: float = 10.0
    max_wait_s: float = 900.0
    rate_limit_budget_s: float = 3 * 3600.0
    """Total time one experiment may spend waiting out rate limits before the run stops."""
    _generic: deque[float] = field(default_factory=deque)
    _rate_waited: float = 0.0
    _rate_streak: int = 0
    _switched: bool = False

    @classmethod
    def of(cls, agent: AgentConfig) -> RetryPolicy:
        """The rules a program's `[agent]` table sets."""
        return cls(
            fallback_model=agent.fallback_model,
            max_failures=agent.max_failures,
            window_s=parse_duration(agent.failure_window),
            base_wait_s=parse_duration(agent.retry_wait),
        )

    def new_experiment(self) -> None:
        self._rate_waited = 0.0
        self._rate_streak = 0

    def decide(
        self, error_class: str, message: str, retry_after: float | None, now: float
    ) -> Retry | GiveUp:
        if error_class == "auth":
            return GiveUp(f"authentication failed: {message} — fix the credentials, then resume")
        if error_class == "quota":
            if self.fallback_model and not self._switched:
                self._switched = True
                return Retry(
                    0.0,
                    switch_model=self.fallback_model,
                    note=f"quota exhausted; switching to {self.fallback_model}",
                )
            return GiveUp(f"quota exhausted: {message}")
        if error_class == "rate_limit":
            wait = (
                retry_after if retry_after is not None else self.base_wait_s * 2**self._rate_streak
            )
            wait = min(max(wait, 0.0), self.max_wait_s)
            if self._rate_waited + wait > self.rate_limit_budget_s:
                return GiveUp(
                    f"still rate limited after waiting {self._rate_waited:.0f}s: {message}"
                )
            self._rate_streak += 1
            self._rate_waited += wait
            return Retry(wait, note=f"rate limited; retrying in {wait:.0f}s")
        while self._generic and now - self._generic[0] > self.window_s:
            self._generic.popleft()
        self._generic.append(now)
        if len(self._generic) >= self.max_failures:
            return GiveUp(
                f"{len(self._generic)} agent failures within {self.window_s / 60:.0f} min; "
                f"last: {message}"
            )
        wait = min(self.base_wait_s * 2 ** (len(self._generic) - 1), self.max_wait_s)
        return Retry(wait, note=f"agent failed ({error_class}): {message}; retrying in {wait:.0f}s")
