"""What a drafting agent is told: the repository to study, the files to leave, the contract they are
checked against (shared/drafts.py) and how expd validates the measurement."""

from __future__ import annotations

from shared.drafts import MAX_FILE_BYTES

PROMPT = """\
You are drafting a program for expd, an automated optimisation loop: in each experiment an agent
changes the code, expd measures the change with the program's measurement, keeps it when the
metric improves beyond the noise and reverts it otherwise. Nobody will answer questions.

The repository to study is `./{snapshot}`: a read-only copy of its committed HEAD. Read its code,
README, benchmarks and tests; run read-only commands there if they help (a build or a benchmark
may write only under /tmp). Do not change it: nothing written there is kept.

The program is called `{name}`. Write these files into the current directory (not into
`./{snapshot}`), each at most {max_kib} KiB of UTF-8 text:

1. `program.md` — the brief every experiment's agent reads, with these sections:
   - `## Goal`: what to improve and why, and what the metric means;
   - `## In scope`: the files or folders the agent may change;
   - `## Off limits`: what it must not touch (tests, the benchmark, whatever produces the
     metric) and what would game the metric;
   - `## Rules`: one focused change per experiment, committed with a message saying what it tried.
2. `measure.sh` — a bash script, run from the root of a fresh checkout of the commit under test,
   that prints the metric either as one JSON object line, e.g. `{{"latency_ms": 12.5}}`, or as a
   line `METRIC latency_ms=12.5`, and exits 0. Repeated runs must agree within a few percent
   (take a median of several repetitions inside the script when one run is noisy), and a run
   should take seconds, not minutes. It must not depend on files outside the repository.
3. `program.toml` — the settings, in TOML. Required: `metric` (the name measure.sh prints) and
   `direction` (`"lower"` or `"higher"` is better). Optional, and nothing else:
   - `[measure]` `timeout` (e.g. `"60s"`), `build_timeout`, and `protect`: globs from the
     repository root of paths an experiment must not touch (the benchmark, the tests), e.g.
     `protect = ["bench/**", "tests/**"]`;
   - `[decide]` `min_effect` (the smallest relative gain worth keeping, e.g. 0.02), `min_runs`,
     `max_runs`, `alpha`, `beta`, `policy` (`"sequential"` or `"fixed"`), `repeats`;
   - `[gates.NAME]` `min`/`max` and `[secondary]` `NAME = "lower"|"higher"` for other metrics
     measure.sh prints;
   - `[loop]` `max_experiments`, `max_consecutive_discards`, `max_cost_usd`.
   expd writes `[agent]` itself; any other key makes the draft invalid.
4. Optionally `build.sh` — a bash script run once per commit before it is measured (a compile).
{constraints}
Then expd checks the files, writes the program and validates the measurement: a build, a warm-up
and {runs} runs of measure.sh on HEAD. A measurement that fails, prints no finite `metric`, or
varies by 15 % or more between runs is rejected. End with a one-line summary of your proposal.
"""


def draft_prompt(
    name: str,
    *,
    snapshot: str,
    runs: int,
    metric: str | None,
    direction: str | None,
    measure: str | None = None,
) -> str:
    constraints = []
    if measure:
        constraints.append(f"The user measures with `{measure}`: build measure.sh around it.")
    if metric:
        constraints.append(f"The user asks for the metric to be named `{metric}`.")
    if direction:
        constraints.append(f"The user says {direction} is better.")
    text = "\n" + " ".join(constraints) + "\n" if constraints else ""
    return PROMPT.format(
        name=name,
        snapshot=snapshot,
        max_kib=MAX_FILE_BYTES // 1024,
        constraints=text,
        runs=runs,
    )
