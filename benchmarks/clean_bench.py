"""How much does `expd clean` give back after a run of ~200 experiments? The real daemon, a real
repository, then `expd clean --yes` through the real CLI.

The repository holds `--source-mb` of tracked files (a checkout's weight); the build (`build.sh`)
leaves a `--cache-mb` build cache (ignored files) in the measurement tree, as compilers do; each
experiment's agent rewrites a 16 KB data file with new random bytes (every experiment adds its own
blob) and proposes a random score, so a few experiments are kept (record lows) and most are
discarded. `[loop] keep_tree = "always"` keeps the trees at the end, to show all a clean reclaims
(the default, `on_crash`, would already have removed them when the run ended).

Reported (disk space: allocated blocks, as `du` counts them): the trees, the run directory, the repository's `.git/objects` (bytes, loose objects),
expd's refs, before and after the clean; the clean's wall time; and that results, report and
finalize still work.

    python benchmarks/clean_bench.py [--experiments 200] [--source-mb 20] [--cache-mb 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.footprint import disk_bytes, run_trees
from tests.repos import expd, git, make_repo, results, start, wait_finished

AGENT = """#!/bin/bash
cat > /dev/null
head -c 12288 /dev/urandom | base64 > data.txt
echo "v = $((RANDOM % 100000))" > f.py
echo "EXPD-DESCRIPTION: try $EXPD_EXPERIMENT"
"""
MEASURE = """#!/bin/bash
v=$(sed -E 's/v = ([0-9]+)/\\1/' f.py)
echo "{\\"score\\": $((v + 1))}"
"""
BUILD = """#!/bin/bash
mkdir -p build
[ -f build/cache.bin ] || head -c $((CACHE_MB * 1048576)) /dev/urandom > build/cache.bin
"""
DECIDE = 'policy = "fixed"\nrepeats = 1\nmin_effect = 0.000001'


def loose(objects: Path) -> int:
    return sum(1 for d in objects.iterdir() if len(d.name) == 2 and d.is_dir() for _ in d.iterdir())


def footprint(repo: Path, run_dir: Path, stamp: str) -> dict[str, int]:
    objects = repo / ".git" / "objects"
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/expd", "refs/heads/expd")
    return {
        "trees": sum(disk_bytes(t, allocated=True) for t in run_trees(repo, "p", stamp)),
        "run_dir": disk_bytes(run_dir, allocated=True),
        "objects": disk_bytes(objects, allocated=True),
        "loose_objects": loose(objects),
        "expd_refs": len(refs.split()),
    }


def run(root: Path, experiments: int, source_mb: int, cache_mb: int) -> dict:
    repo = make_repo(
        root, max_experiments=experiments, agent_sh=AGENT, measure_sh=MEASURE, decide=DECIDE
    )
    toml = repo / ".expd" / "programs" / "p" / "program.toml"
    toml.write_text(
        toml.read_text().replace("[loop]\n", "[loop]\nmax_consecutive_discards = 100000\n")
    )
    (repo / ".expd" / "programs" / "p" / "build.sh").write_text(BUILD)
    (repo / "f.py").write_text("v = 99999\n")
    (repo / ".gitignore").write_text("build/\n")
    src = repo / "src"
    src.mkdir()
    for i in range(source_mb):
        (src / f"blob{i}.txt").write_text(os.urandom(512 * 1024).hex())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "sources")
    git(repo, "gc", "-q")  # the user's own history packed, as it usually is
    paths = start(repo, "p", env={"CACHE_MB": str(cache_mb)})
    started = time.monotonic()
    final = wait_finished(paths, timeout=3600)
    run_s = time.monotonic() - started
    stamp = paths.dir.name
    run_id = f"p/{stamp}"
    records = [r for r in results(paths) if r.experiment > 0]
    kept = sum(r.status == "keep" for r in records)
    before = footprint(repo, paths.dir, stamp)
    t0 = time.monotonic()
    proc = expd("clean", "--yes", "--json", cwd=repo, timeout=600)
    clean_s = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    after = footprint(repo, paths.dir, stamp)
    still = {
        "results": expd("results", run_id, "--json", cwd=repo).returncode == 0,
        "report": expd("report", run_id, cwd=repo).returncode == 0,
        "finalize": expd("finalize", run_id, "--force", cwd=repo, timeout=600).returncode == 0,
    }
    return {
        "experiments": len(records),
        "kept": kept,
        "phase": final.phase,
        "run_s": round(run_s, 1),
        "clean_s": round(clean_s, 2),
        "before": before,
        "after": after,
        "reclaimed_bytes": report["reclaimed_bytes"],
        "still_works": still,
    }


def mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--source-mb", type=int, default=20)
    parser.add_argument("--cache-mb", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EXPD_STATE_DIR"] = str(Path(tmp) / "state")
        out = run(Path(tmp) / "repo", args.experiments, args.source_mb, args.cache_mb)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    b, a = out["before"], out["after"]
    print(
        f"{out['experiments']} experiments ({out['kept']} kept) in {out['run_s']} s; "
        f"clean took {out['clean_s']} s"
    )
    print("| | before | after |\n|---|---|---|")
    print(f"| trees (agent + measurement) | {mb(b['trees'])} | {mb(a['trees'])} |")
    print(f"| run directory | {mb(b['run_dir'])} | {mb(a['run_dir'])} |")
    print(f"| `.git/objects` | {mb(b['objects'])} | {mb(a['objects'])} |")
    print(f"| loose objects | {b['loose_objects']} | {a['loose_objects']} |")
    print(f"| expd's refs | {b['expd_refs']} | {a['expd_refs']} |")
    print(f"reclaimed (as `expd clean` reports it): {mb(out['reclaimed_bytes'])}")
    print(f"still works after the clean: {out['still_works']}")


if __name__ == "__main__":
    main()
