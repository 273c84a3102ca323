"""The dashboard's actions by name in the command palette (key bindings alone are not listed there)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

COMMANDS = (
    ("Stop the run", "stop", "Finish the current experiment, then end the run (s)"),
    ("Abort the run", "abort", "Kill the agent now, revert, end the run (a)"),
    (
        "Guidance for the next agent",
        "guidance",
        "Free text the next experiment's agent receives (g)",
    ),
    ("Max experiments", "max_experiments", "Change how many experiments this run does (m)"),
    ("Kill the daemon", "kill", "SIGKILL an unresponsive daemon; resume the run afterwards (K)"),
    ("Detach", "detach", "Leave the dashboard; the daemon keeps running (q)"),
    ("Help", "help", "Keys and what the dashboard shows (?)"),
)


class RunCommands(Provider):
    """Offers only the actions the screen currently allows (no kill for a healthy daemon)."""

    def _available(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        screen = self.screen
        for name, action, help_text in COMMANDS:
            if screen.check_action(action, ()) is True:
                yield name, help_text, partial(screen.run_action, action)

    async def discover(self) -> Hits:
        for name, help_text, callback in self._available():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._available():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
