"""How quickly the TUI shows what the daemon writes, and that it stays responsive under load.

Everything is real except the terminal: the real app (`ExpdApp`, headless under `run_test`), the
real `RunSource` watching a real run directory, the real run dashboard. The benchmark writes into
the run directory exactly as the daemon does.

1. append latency: a result line appended to results.jsonl → its row (key = experiment) is in the
   results table. Goal: p95 ≤ 250 ms.
2. open time: app start → the 10,000th row of a 10,000-result run is in the table. Goal ≤ 1 s.
   `settled_ms` goes on until the app has handled every pending message and drawn a frame.
3. responsiveness: while a writer thread appends to the agent log at 5 MB/s, the time from a key
   event reaching the app to its action running. Goal < 100 ms.

    python benchmarks/tui_bench.py [--appends 50] [--results 10000] [--presses 40]

Prints one JSON object; docs/benchmarks.md records the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EXPD_STATE_DIR", tempfile.mkdtemp(prefix="expd-bench-state-"))

from textual import events  # noqa: E402
from textual.binding import Binding, BindingType  # noqa: E402

from shared import codec  # noqa: E402
from shared.atomic import append_line  # noqa: E402
from shared.runs import RunRef  # noqa: E402
from tests.fake_runs import FakeRun, in_flight, make_run, result  # noqa: E402
from tui.app import ExpdApp  # noqa: E402
from tui.widgets.results_table import ResultsTable  # noqa: E402

SIZE = (120, 40)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values_ms), 1),
        "p95_ms": round(percentile(values_ms, 0.95), 1),
        "max_ms": round(max(values_ms), 1),
        "n": len(values_ms),
    }


def new_run(base: Path, results: int, **state: Any) -> FakeRun:
    """A live-looking run (lock held by this process) with `results` results already written."""
    run = make_run(base, live=True, experiment=results, max_experiments=results + 1000, **state)
    with run.paths.results.open("ab") as f:
        for n in range(results):
            f.write(codec.encode_line(result(n, "baseline" if n == 0 else "discard", 100.0 + n)))
    return run


def ref_of(run: FakeRun) -> RunRef:
    return RunRef(run.program, run.stamp, run.paths, run.repo)


class BenchApp(ExpdApp):
    """The real app plus one cheap key binding whose action timestamps when it runs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *ExpdApp.BINDINGS,
        Binding("f12", "ping", "ping", show=False, priority=True),
    ]

    def __init__(self, run: RunRef) -> None:
        super().__init__(run=run)
        self.pinged: list[float] = []

    def action_ping(self) -> None:
        self.pinged.append(time.perf_counter())


def results_table(app: ExpdApp) -> ResultsTable | None:
    try:
        return app.screen.query_one(ResultsTable)
    except Exception:
        return None


async def wait_row(app: ExpdApp, key: str, timeout: float = 10.0) -> float:
    """Poll (1 ms) until row `key` is in the results table; the time it was seen."""
    deadline = time.perf_counter() + timeout
    while True:
        table = results_table(app)
        if table is not None and table.has_row(key):
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise SystemExit(f"row {key} did not appear within {timeout}s")
        await asyncio.sleep(0.001)


async def bench_append(base: Path, appends: int) -> dict[str, float]:
    run = new_run(base / "append", 5, baseline=100.0)
    app = ExpdApp(run=ref_of(run))
    latencies: list[float] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_row(app, "4")
            await pilot.pause(0.3)
            for n in range(5, 5 + appends):
                line = codec.encode_line(result(n, "discard", 100.0 + n))
                start = time.perf_counter()
                append_line(run.paths.results, line, durable=False)
                seen = await wait_row(app, str(n))
                latencies.append((seen - start) * 1000)
                await asyncio.sleep(0.03 + (n % 5) * 0.01)  # not aligned with the debounce
    finally:
        run.die()
    return summary(latencies)


async def bench_open(base: Path, count: int) -> dict[str, float]:
    run = new_run(base / "open", count, baseline=100.0)
    try:
        start = time.perf_counter()
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=SIZE) as pilot:
            seen = await wait_row(app, str(count - 1), timeout=60)
            await pilot.pause()  # every pending message handled, then a frame drawn
            settled = time.perf_counter()
            rows = results_table(app).row_count  # type: ignore[union-attr]
    finally:
        run.die()
    return {
        "open_ms": round((seen - start) * 1000, 1),
        "settled_ms": round((settled - start) * 1000, 1),
        "rows": rows,
    }


def log_writer(path: Path, rate: float, stop: threading.Event, written: list[int]) -> None:
    """Append ~100-byte lines at `rate` bytes/s in 10 ms slices, as an agent's stream would."""
    line = b"tool_use: edit f.py  " + b"x" * 78 + b"\n"
    per_slice = int(rate / 100)
    lines_per_slice = max(1, per_slice // len(line))
    chunk = line * lines_per_slice
    start = time.perf_counter()
    total = 0
    with path.open("ab", buffering=0) as f:
        while not stop.is_set():
            f.write(chunk)
            total += len(chunk)
            ahead = total / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
    written.append(total)


async def bench_keys(base: Path, presses: int, rate: float) -> dict[str, Any]:
    run = new_run(base / "keys", 3, baseline=100.0, in_flight=in_flight(3))
    run.paths.agent_dir.mkdir(exist_ok=True)
    app = BenchApp(ref_of(run))
    stop = threading.Event()
    written: list[int] = []
    latencies: list[float] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_row(app, "2")
            writer = threading.Thread(
                target=log_writer, args=(run.paths.agent_log(3), rate, stop, written)
            )
            started = time.perf_counter()
            writer.start()
            await pilot.pause(0.5)  # let the stream get going
            for _ in range(presses):
                before = len(app.pinged)
                sent = time.perf_counter()
                app.post_message(events.Key("f12", None))
                while len(app.pinged) == before:
                    await asyncio.sleep(0.0005)
                latencies.append((app.pinged[-1] - sent) * 1000)
                await asyncio.sleep(0.05)
            stop.set()
            writer.join()
            duration = time.perf_counter() - started
    finally:
        stop.set()
        run.die()
    out: dict[str, Any] = summary(latencies)
    out["log_mb_per_s"] = round(written[0] / duration / 1e6, 2) if written else 0.0
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="expd-tui-bench-") as tmp:
        base = Path(tmp)
        return {
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(),
            "append_to_row": await bench_append(base, args.appends),
            "open_10k": await bench_open(base, args.results),
            "key_latency_under_5mb_s_log": await bench_keys(base, args.presses, args.rate),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=50)
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5e6, help="agent log bytes per second")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
