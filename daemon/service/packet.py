"""The loop's hooks for the agents' memory: what goes into a packet, notes, the end notice.

Kept out of `daemon/service/loop.py` so the loop only calls a few functions; each one is best-effort
(a missing or unreadable file means an empty part, never a failed experiment).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from daemon.service.context import Extras, build_prompt
from daemon.service.ideas import recent_ideas, record_notes
from daemon.service.log import log, redactor
from daemon.service.notify import notify, notify_env
from daemon.service.store import RunStore
from shared.paths import ProgramPaths, RunPaths
from shared.schema import ProgramConfig, ResultRecord, RunManifest, RunState
from shared.tail import last_bytes

DIAGNOSTICS_TAIL = 3000
IDEAS_SHARE = 4
"""The ideas backlog may take at most 1/IDEAS_SHARE of the packet."""


def _tail(path: Path, limit: int) -> str:
    """The end of a file, from its first whole line when it is longer than `limit`."""
    try:
        got = last_bytes(path, limit)
    except OSError:
        return ""
    if got is None:
        return ""
    data, start = got
    text = data.decode(errors="replace")
    return text if start == 0 else "…" + text[text.find("\n") + 1 :]


def packet_extras(
    paths: RunPaths,
    manifest: RunManifest,
    config: ProgramConfig,
    state: RunState,
    addendum: str = "",
) -> Extras:
    return Extras(
        addendum=addendum,
        guidance=state.guidance,
        ideas=recent_ideas(paths.ideas, config.agent.context_chars // IDEAS_SHARE),
        diagnostics=_tail(paths.diagnostics, DIAGNOSTICS_TAIL),
        carry_forward=manifest.carry_forward,
        max_consecutive_discards=config.loop.max_consecutive_discards,
    )


def write_prompt(
    n: int,
    paths: RunPaths,
    program: ProgramPaths,
    manifest: RunManifest,
    config: ProgramConfig,
    store: RunStore,
    results: list[ResultRecord],
    *,
    addendum: str = "",
) -> tuple[str, Path]:
    """Write experiment `n`'s packet as its prompt (the file also marks the experiment begun).

    `addendum` is the prompt addendum of the arm that runs the experiment.

    Redacted like every file: a secret in guidance, program.md or an earlier result stays out.
    """
    md = program.md
    prompt = build_prompt(
        experiment=n,
        program_md=md.read_text(errors="replace") if md.exists() else "",
        state=store.state,
        results=results,
        patches={r.experiment: paths.patch(r.experiment) for r in results[-20:]},
        budget=config.agent.context_chars,
        extras=packet_extras(paths, manifest, config, store.state, addendum),
    )
    prompt = store.redact(prompt)
    prompt_file = paths.prompt(n)
    store.write_file(prompt_file, prompt)
    return prompt, prompt_file


def note_ideas(paths: RunPaths, record: ResultRecord) -> None:
    """Append the agent's notes block of this experiment to `ideas.md`, if it wrote one."""
    if record.experiment <= 0:
        return
    with contextlib.suppress(OSError):  # the backlog is advice: a lost entry must not stop a run
        record_notes(
            paths.ideas,
            paths.agent_log(record.experiment),
            record.experiment,
            record.status,
            redactor().text(record.description),  # the notes come from the redacted log
        )


def notify_end(command: str, paths: RunPaths, manifest: RunManifest, store: RunStore) -> None:
    """Run `[loop] notify` in the background; its failures go to daemon.log and an event."""

    def report(message: str) -> None:
        log(message)
        store.event("notify_failed", None, message=message)

    env = notify_env(manifest, store.state, str(paths.dir))
    notify(command, env, str(paths.dir), report)
