"""The parts behind the record's defences, one at a time: seals, signed control requests, the
redactor, protected-path globs, bounded output, the store's caps and restore, metric parsing."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import anyio
import msgspec
import pytest

from daemon.ops import children
from daemon.ops.measure import Measurer, parse_metrics
from daemon.service.recovery import KeyLost, load_results, open_key
from daemon.service.store import AGENT_EVENTS_CAP, AGENT_LOG_CAP, RunStore
from shared import codec, control, seal
from shared.locking import is_locked, try_lock_dir
from shared.paths import ProgramPaths, RunPaths
from shared.protect import PathChange, Protected, check_pattern, unprotected_mentions
from shared.redact import Redactor, known_names
from shared.schema import ControlRequest, ProgramConfig, ResultRecord, RunState

KEY = bytes(range(32))


# --------------------------------------------------------------------------- seals


def test_a_sealed_line_verifies_and_any_change_breaks_it() -> None:
    line = codec.encode(ResultRecord(experiment=3, status="discard", metric=2.0))
    sealed = seal.seal(KEY, line)
    assert sealed.endswith(b'"}') and b'"seal":"' in sealed
    assert seal.unseal(KEY, sealed) == line
    assert seal.unseal(KEY, sealed + b"\n") == line
    assert seal.unseal(bytes(32), sealed) is None  # another key
    assert seal.unseal(KEY, sealed.replace(b"discard", b"keep")) is None
    assert seal.unseal(KEY, line) is None and not seal.is_sealed(line)
    assert seal.seal(None, line) == line  # a run without a key writes as before
    decoded = msgspec.json.decode(sealed, type=ResultRecord)  # readers ignore the seal
    assert decoded.status == "discard"


def test_the_key_is_private_and_never_replaced(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    key = seal.create_key(paths)
    assert seal.load_key(paths) == key
    assert stat.S_IMODE(seal.key_path(paths).stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        seal.create_key(paths)


def test_open_key_creates_reuses_and_refuses_a_lost_one(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    key = open_key(paths)  # a new run gets one
    assert key is not None and open_key(paths) == key
    paths.results.write_bytes(seal.seal(key, codec.encode(ResultRecord(status="baseline"))) + b"\n")
    seal.key_path(paths).unlink()
    with pytest.raises(KeyLost):
        open_key(paths)
    paths.results.write_bytes(codec.encode_line(ResultRecord(status="baseline")))
    assert open_key(paths) is None  # a run recorded before seals goes on without one


def test_load_results_drops_lines_without_a_valid_seal(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    good = [seal.seal(KEY, codec.encode(ResultRecord(experiment=n))) for n in (0, 1)]
    forged = codec.encode(ResultRecord(experiment=2, status="keep"))
    paths.results.write_bytes(b"\n".join([good[0], forged, good[1]]) + b"\n")
    records, notes = load_results(paths, KEY)
    assert [r.experiment for r in records] == [0, 1]
    assert any("did not write" in n for n in notes)
    assert paths.results.read_bytes() == b"\n".join(good) + b"\n"  # rewritten without it
    legacy, _ = load_results(RunPaths(tmp_path))  # no key: every line counts
    assert len(legacy) == 2


def test_control_requests_are_signed_by_expds_writer(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    seal.create_key(paths)
    key = seal.load_key(paths)
    control.send(paths, "set", key="max_experiments", value=7)
    (request,) = control.pending(paths, set())
    assert request.seal and control.verified(key, request)
    assert not control.verified(key, msgspec.structs.replace(request, value=70))
    assert not control.verified(key, ControlRequest(id="x", action="stop"))
    assert control.verified(None, ControlRequest(id="x", action="stop"))  # a run without a key


def test_guidance_is_redacted_before_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_TOKEN", "tok-0123456789")
    paths = RunPaths(tmp_path)
    control.send(paths, "set", key="guidance", value="use tok-0123456789 here")
    assert b"tok-0123456789" not in paths.control.read_bytes()
    assert control.pending(paths, set())[0].value == "use [redacted:SOME_TOKEN] here"


def test_a_directory_lock_survives_unlinking_anything(tmp_path: Path) -> None:
    fd = try_lock_dir(tmp_path)
    assert fd is not None and is_locked(tmp_path)
    assert try_lock_dir(tmp_path) is None
    os.close(fd)
    assert not is_locked(tmp_path)


# --------------------------------------------------------------------------- secrets


def test_redactor_picks_secret_looking_names_and_long_values() -> None:
    env = {
        "OPENAI_API_KEY": "sk-abcdefgh12345",
        "MY_PASSWORD": "hunter2hunter2",
        "GITHUB_TOKEN": "short",  # too short to be a real key, and would redact words
        "HOME": "/home/someone",
        "CUSTOM": "custom-credential-1",
    }
    r = Redactor.from_env(env, known_names("CUSTOM"))
    text = "a sk-abcdefgh12345 b hunter2hunter2 short /home/someone custom-credential-1"
    assert r.text(text) == (
        "a [redacted:OPENAI_API_KEY] b [redacted:MY_PASSWORD] short /home/someone [redacted:CUSTOM]"
    )
    assert r.found(text) == ["CUSTOM", "MY_PASSWORD", "OPENAI_API_KEY"]
    assert {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "CODEX_API_KEY"} <= known_names()


def test_redactor_finds_values_as_json_writes_them() -> None:
    r = Redactor({"A_SECRET": 'quote"and\\slash-é'})
    encoded = codec.encode({"text": 'x quote"and\\slash-é y'})
    assert r.data(encoded) == b'{"text":"x [redacted:A_SECRET] y"}'
    assert msgspec.json.decode(r.data(encoded))  # still valid JSON


# --------------------------------------------------------------------------- protected paths


def test_redactor_tells_a_secret_a_change_adds_from_one_it_keeps_or_moves() -> None:
    r = Redactor({"A_KEY": "sk-aaaaaaaaaaaa", "B_TOKEN": "tok-bbbbbbbbbbbb"})
    had = b"key = 'sk-aaaaaaaaaaaa'\n"
    assert r.added(had, had + b"more = 1\n") == []
    assert r.added(had, b"other = 2\n" + had) == []  # moved, not added
    assert r.added(had, had + had) == ["A_KEY"]  # one more copy
    assert r.added(b"", b'{"t": "tok-bbbbbbbbbbbb"}') == ["B_TOKEN"]
    assert r.added(had, b"") == []


def test_protect_globs() -> None:
    p = Protected(["bench.py", "tests/**", "data/", "src/*.c", "**/conf.toml", "./x/[ab].txt"])
    covered = ["bench.py", "tests", "tests/a/b.py", "data/x/y", "src/a.c", "conf.toml"]
    covered += ["deep/down/conf.toml", "x/a.txt"]
    free = ["bench.pyc", "x/bench.py", "src/b/a.c", "testsuite/a", "x/c.txt", "f.py"]
    assert [c for c in covered if not p.covers(c)] == []
    assert [f for f in free if p.covers(f)] == []
    assert not Protected([]) and Protected(["a"])


def test_protect_reason_names_each_path_and_what_happened() -> None:
    p = Protected(["bench.py", "tests/**"])
    changes = [
        PathChange("f.py", "M", "100644", "100644"),
        PathChange("bench.py", "T", "100644", "120000"),
        PathChange("tests/t.py", "D", "100644", "000000"),
        PathChange("tests/new.py", "A", "000000", "100755"),
        PathChange("tests/x.py", "M", "100644", "100755"),
    ]
    reason = p.violation(changes)
    assert reason is not None
    assert "bench.py (replaced by a symlink)" in reason and "tests/t.py (deleted)" in reason
    assert "tests/new.py (added)" in reason and "and 1 more" in reason
    assert p.violation(changes[:1]) is None


def test_protect_patterns_are_checked() -> None:
    assert check_pattern("tests/**") is None
    for bad in ("", "/abs", "../up", "a/../b"):
        assert check_pattern(bad) is not None


def test_unprotected_mentions_finds_tracked_files_the_commands_name() -> None:
    tracked = ["bench.py", "tests/a.py", "tests/b.py", "src/lib.py", "README.md"]
    texts = ['python ./bench.py --fast && pytest tests/ -q; cat "src/lib.py"']
    assert unprotected_mentions(texts, tracked, Protected([])) == [
        "bench.py",
        "tests/",
        "src/lib.py",
    ]
    assert unprotected_mentions(texts, tracked, Protected(["bench.py", "tests", "src"])) == []


# --------------------------------------------------------------------------- bounded output


async def test_a_long_line_is_cut_and_the_stdout_tail_keeps_the_metrics(tmp_path: Path) -> None:
    seen: list[int] = []
    command = (
        "head -c 3000000 /dev/zero | tr '\\0' a; echo; "
        "yes chatter | head -n 200000; echo '{\"m\": 1}'"
    )
    result = await children.run(
        command,
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=30,
        on_line=lambda name, line: seen.append(len(line)),
        max_stdout=1000,
    )
    assert seen[0] == children.MAX_LINE + len(children.LINE_CUT)
    assert len(result.stdout) <= 1000 and result.stdout.endswith('{"m": 1}')
    assert parse_metrics(result.stdout) == {"m": 1.0}


def test_store_caps_the_agent_log_and_events(tmp_path: Path) -> None:
    store = RunStore(RunPaths(tmp_path), RunState())
    line = "x" * 999
    for _ in range(AGENT_LOG_CAP // 1000 + 50):
        store.agent_log(1, line)
    for i in range(AGENT_EVENTS_CAP + 10):
        store.agent_event(1, {"type": "text", "text": str(i)})
    store.close_agent_log()
    log = store.paths.agent_log(1).read_text()
    assert len(log) <= AGENT_LOG_CAP + 100 and log.count("agent output truncated") == 1
    assert log.rstrip().endswith("bytes of agent output not logged")
    lines = store.paths.events.read_bytes().splitlines()
    assert len(lines) == AGENT_EVENTS_CAP + 1 and b"agent_truncated" in lines[-1]
    store.agent_event(2, {"type": "text", "text": "next experiment"})  # counts start afresh
    assert b"next experiment" in store.paths.events.read_bytes()


def test_store_restores_results_someone_else_changed(tmp_path: Path) -> None:
    store = RunStore(RunPaths(tmp_path), RunState(), key=KEY)
    store.append_result(ResultRecord(experiment=0, status="baseline"))
    with store.paths.results.open("ab") as f:
        f.write(b'{"experiment":1,"status":"keep"}\n')
    store.append_result(ResultRecord(experiment=1, status="discard"))
    lines = store.paths.results.read_bytes().splitlines()
    assert [msgspec.json.decode(x)["status"] for x in lines] == ["baseline", "discard"]
    assert all(seal.unseal(KEY, x) for x in lines)
    assert b"record_restored" in store.paths.events.read_bytes()


def test_store_writes_no_secret(tmp_path: Path) -> None:
    store = RunStore(RunPaths(tmp_path), RunState(), redactor=Redactor({"X_KEY": "value-1234"}))
    store.state.message = "oops value-1234"
    store.save()
    store.event("e", None, detail="value-1234")
    store.agent_log(1, "value-1234")
    store.write_file(tmp_path / "f", "value-1234")
    store.append_result(ResultRecord(description="value-1234"))
    store.close_agent_log()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"value-1234" not in path.read_bytes(), path


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ('{"score": ' + "9" * 400 + "}", "is inf: not a finite number"),
        ('{"score": -' + "9" * 400 + "}", "is -inf: not a finite number"),
        ('{"score": 1e999}', "is inf: not a finite number"),
        ('{"score": NaN}', "is nan: not a finite number"),
        ("METRIC score=" + "9" * 400, "is inf: not a finite number"),
        ("METRIC score=abc", "is nan: not a finite number"),
    ],
)
def test_a_metric_no_float_holds_is_a_failed_measurement(
    tmp_path: Path, output: str, needle: str
) -> None:
    (tmp_path / "out").write_text(output + "\n")
    config = msgspec.convert(
        {"metric": "score", "direction": "lower", "measure": {"command": "cat out"}},
        ProgramConfig,
    )
    measurer = Measurer(config, ProgramPaths(tmp_path, "p"), tmp_path, dict(os.environ))
    sample = anyio.run(measurer.once)
    assert not sample.ok and needle in sample.error, sample.error
    assert all(math.isfinite(v) for v in sample.metrics.values())


def test_a_non_finite_secondary_metric_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "out").write_text('{"score": 2, "other": 1e999}\n')
    config = msgspec.convert(
        {"metric": "score", "direction": "lower", "measure": {"command": "cat out"}},
        ProgramConfig,
    )
    measurer = Measurer(config, ProgramPaths(tmp_path, "p"), tmp_path, dict(os.environ))
    sample = anyio.run(measurer.once)
    assert sample.ok and sample.metrics == {"score": 2.0}
