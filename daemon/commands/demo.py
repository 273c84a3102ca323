"""The self-contained offline demo: a tiny git repository whose metric the `tune` agent improves.

`expd demo` must work on a fresh machine with no API key and no network, finish in well under a
minute and show a clear, trustworthy improvement. So the metric is the compressed size of a bundled
corpus: deterministic (one sample per measurement is enough, decisions are clean), measured in tens
of milliseconds, and driven by a few zlib settings whose starting values are deliberately poor.
"""

from __future__ import annotations

import random
import shlex
import sys
from pathlib import Path

from daemon.ops.git.cli import init_repo
from shared.errors import UserError
from shared.paths import RepoPaths
from shared.programs import exclude_expd

PROGRAM = "demo"
CORPUS_BYTES = 200_000
CORPUS_SEED = 20240607
GIT_IDENTITY = ("-c", "user.name=expd demo", "-c", "user.email=demo@expd.invalid")

PACK_PY = '''"""Compress corpus.txt with the settings in pack_config.py; print the size as JSON.

The corpus is compressed in independent chunks of CHUNK_KB kilobytes (as a log shipper or a
block store would), so chunk size, level, strategy and memory level all change the result.
The output is decompressed again and checked, so a setting that loses data cannot win.
"""

import json
import time
import zlib
from pathlib import Path

import pack_config as cfg

STRATEGIES = {
    "default": zlib.Z_DEFAULT_STRATEGY,
    "filtered": zlib.Z_FILTERED,
    "huffman_only": zlib.Z_HUFFMAN_ONLY,
    "rle": zlib.Z_RLE,
}


def pack(data: bytes) -> list[bytes]:
    size = cfg.CHUNK_KB * 1024
    chunks = []
    for start in range(0, len(data), size):
        compressor = zlib.compressobj(
            cfg.LEVEL, zlib.DEFLATED, 15, cfg.MEM_LEVEL, STRATEGIES[cfg.STRATEGY]
        )
        chunks.append(compressor.compress(data[start : start + size]) + compressor.flush())
    return chunks


def main() -> None:
    data = Path("corpus.txt").read_bytes()
    started = time.perf_counter()
    chunks = pack(data)
    seconds = time.perf_counter() - started
    if b"".join(zlib.decompress(chunk) for chunk in chunks) != data:
        raise SystemExit("round trip failed")
    print(json.dumps({"bytes": sum(len(chunk) for chunk in chunks), "seconds": round(seconds, 4)}))


if __name__ == "__main__":
    main()
'''

PACK_CONFIG_PY = '''"""Compression settings used by pack.py (the values the demo tunes)."""

LEVEL = 1  # zlib level, 0 (store) .. 9 (best)
CHUNK_KB = 1  # each chunk is compressed independently
STRATEGY = "default"  # default | filtered | huffman_only | rle
MEM_LEVEL = 2  # zlib memLevel, 1 .. 9: memory for the match finder
'''

PROGRAM_TOML = """# The expd demo: make the compressed corpus smaller by tuning zlib settings.
metric = "bytes"
direction = "lower"

[measure]
timeout = "30s"

[decide]
policy = "fixed"
repeats = 1          # the size is deterministic: one sample is the truth
min_effect = 0.001   # keep anything at least 0.1 % smaller

[loop]
max_experiments = 10
max_consecutive_discards = 10

[agent]
kind = "tune"
timeout = "60s"

[tune]
seed = 7
sampler = "tpe"

[tune.params.LEVEL]
file = "pack_config.py"
pattern = '^LEVEL = (\\d+)'
type = "int"
low = 0
high = 9

[tune.params.CHUNK_KB]
file = "pack_config.py"
pattern = '^CHUNK_KB = (\\d+)'
type = "int"
low = 1
high = 256
log = true

[tune.params.STRATEGY]
file = "pack_config.py"
pattern = '^STRATEGY = "(\\w+)"'
type = "choice"
choices = ["default", "filtered", "huffman_only", "rle"]

[tune.params.MEM_LEVEL]
file = "pack_config.py"
pattern = '^MEM_LEVEL = (\\d+)'
type = "int"
low = 1
high = 9
"""

PROGRAM_MD = """# demo: a smaller compressed corpus

## Goal
Make `bytes` lower: the total size of `corpus.txt` compressed by `pack.py`. The measurement is
deterministic, so one sample per experiment decides.

## In scope
- `pack_config.py`: `LEVEL`, `CHUNK_KB`, `STRATEGY`, `MEM_LEVEL`.

## Off limits
- `pack.py` and `corpus.txt`: they define the metric. `pack.py` decompresses its output and checks
  it, so a setting that loses data fails the measurement instead of winning.

## Rules
- One change per experiment. The built-in `tune` agent proposes values with Optuna and learns from
  each measurement, including the discarded ones.
"""

MEASURE_SH = """#!/usr/bin/env bash
# Runs in the experiment's worktree; prints {{"bytes": N, "seconds": t}}.
# -B: no __pycache__, so measuring never leaves untracked files in the worktree.
set -euo pipefail
exec {python} -B pack.py
"""

README_MD = """# expd demo

A tiny repository created by `expd demo` to show the experiment loop end to end, offline.

- `corpus.txt` — about 200 KB of generated log lines with long-range repetition.
- `pack.py` — compresses the corpus in independent chunks with zlib and prints
  `{"bytes": N, "seconds": t}`.
- `pack_config.py` — the settings, deliberately poor to start with.

The program `demo` (in `.expd/programs/demo/`, excluded from git) asks expd to make `bytes` lower.
Its agent is the built-in `tune` agent: it proposes settings with Optuna, commits them, and expd
measures each proposal, keeps it if the corpus got smaller and reverts it otherwise.

Try `expd status`, `expd results` and `expd report` while or after it runs.
"""

GITIGNORE = "__pycache__/\n"

_SERVICES = ["api", "auth", "billing", "cache", "db", "gateway", "queue", "search", "worker"]
_LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
_WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "request user session token order invoice payment cart item stock price retry timeout "
    "connection pool shard replica index query cursor batch commit rollback lock lease "
    "upstream downstream latency throughput quota limit region zone node cluster deploy"
).split()
_TEMPLATES = [
    "{svc}: handled {word} {n} in {ms} ms",
    "{svc}: {word} {word2} failed after {n} attempts (status {code})",
    "{svc}: cache {hit} for {word} key={hex}",
    "{svc}: started {word} batch of {n} {word2}s",
    "{svc}: {word} queue depth {n}, lag {ms} ms",
    "{svc}: user {n} opened {word} {hex}",
]


def corpus(size: int = CORPUS_BYTES, seed: int = CORPUS_SEED) -> str:
    """Deterministic pseudo-logs; whole blocks recur tens of KB later, so chunking matters."""
    rng = random.Random(seed)
    lines: list[str] = []
    total = 0
    clock = 1_700_000_000
    while total < size:
        if len(lines) > 400 and rng.random() < 0.08:
            # Replay an earlier burst (retries, repeated jobs): long-range redundancy.
            start = rng.randrange(len(lines) - 40)
            burst = lines[start : start + rng.randrange(8, 40)]
        else:
            clock += rng.randrange(0, 3)
            template = rng.choice(_TEMPLATES)
            message = template.format(
                svc=rng.choice(_SERVICES),
                word=rng.choice(_WORDS),
                word2=rng.choice(_WORDS),
                n=rng.randrange(1, 5000),
                ms=rng.randrange(1, 900),
                code=rng.choice((500, 502, 503, 504)),
                hit=rng.choice(("hit", "hit", "miss")),
                hex=f"{rng.getrandbits(32):08x}",
            )
            burst = [f"{clock} {rng.choice(_LEVELS):5} {message}"]
        for line in burst:
            lines.append(line)
            total += len(line) + 1
    return "\n".join(lines) + "\n"


def write_demo_repo(directory: Path) -> str:
    """Create the demo repository and its program in `directory`; returns the program name."""
    root = Path(directory).expanduser().absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"{root} already exists and is not empty: choose another --dir")
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "README.md": README_MD,
        ".gitignore": GITIGNORE,
        "corpus.txt": corpus(),
        "pack.py": PACK_PY,
        "pack_config.py": PACK_CONFIG_PY,
    }
    for name, text in files.items():
        (root / name).write_text(text)
    init_repo(root, list(files), "demo: corpus and packer", GIT_IDENTITY)

    exclude_expd(root)
    program = RepoPaths(root).program(PROGRAM)
    program.runs_dir.mkdir(parents=True)
    program.toml.write_text(PROGRAM_TOML)
    program.md.write_text(PROGRAM_MD)
    program.measure_sh.write_text(MEASURE_SH.format(python=shlex.quote(sys.executable)))
    program.measure_sh.chmod(0o755)
    return PROGRAM
