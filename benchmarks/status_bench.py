"""`expd status --json` must answer in milliseconds however long the run is.

Builds a run directory with 10,000 results (and one with 100) whose daemon looks alive (lock held
by this process, fresh heartbeat), then times the real CLI in a fresh interpreter, as a user or a
script would call it. The two medians should be the same: status never reads results.jsonl.

    python benchmarks/status_bench.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import codec  # noqa: E402
from tests.fake_runs import git_repo, make_run, result  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build(base: Path, count: int) -> tuple[Path, int]:
    """A repository with one live run holding `count` results; the lock fd to keep open."""
    repo = git_repo(base / f"repo-{count}")
    run = make_run(repo, live=True, experiment=count, max_experiments=count + 10, baseline=100.0)
    with run.paths.results.open("ab") as f:
        for n in range(count):
            f.write(codec.encode_line(result(n, "baseline" if n == 0 else "discard", 100.0 + n)))
    assert run.lock_fd is not None
    return repo, run.lock_fd


def python_env(cache: Path) -> dict[str, str]:
    """Bytecode cached (in a temp dir) as in any normal install, even if this shell disables it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(cache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    status = [sys.executable, "-m", "shared.cli.main", "status", "--json"]
    with tempfile.TemporaryDirectory(prefix="expd-status-bench-") as tmp:
        os.environ["EXPD_STATE_DIR"] = str(Path(tmp) / "state")
        env = python_env(Path(tmp) / "pycache")
        cases: list[tuple[str, list[str], Path]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], Path(tmp)),
            ("python -c 'import msgspec'", [sys.executable, "-c", "import msgspec"], Path(tmp)),
        ]
        fds = []
        for count in (100, 10_000):
            repo, fd = build(Path(tmp), count)
            fds.append(fd)
            size = sum(p.stat().st_size for p in repo.glob(".expd/programs/*/runs/*/results.jsonl"))
            cases.append((f"status --json, {count:,} results ({size / 1e6:.1f} MB)", status, repo))
        try:
            for _, command, cwd in cases:  # warm the page cache and the bytecode cache
                timed(command, cwd, env)
            # Interleaved, so a burst of load on the machine hits every case alike.
            timings: dict[str, list[float]] = {label: [] for label, _, _ in cases}
            for _ in range(args.repeats):
                for label, command, cwd in cases:
                    timings[label].append(timed(command, cwd, env))
        finally:
            for fd in fds:
                os.close(fd)
    print(f"{'':<44} {'median':>8} {'p95':>8}   ({args.repeats} runs each, interleaved)")
    for label, values in timings.items():
        median, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"{label:<44} {median:>6.1f}ms {p95:>6.1f}ms")


if __name__ == "__main__":
    main()
