"""shared/tail: complete lines only, from an offset or from the end, whatever the writer is doing.

Each reader is checked against a torn last line, truncation and replacement, an empty and a missing
file, and a UTF-8 character split where a read or a chunk boundary falls.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from shared.tail import (
    TailReader,
    end_of_last_line,
    head_lines,
    last_bytes,
    last_lines,
    read_complete_lines,
    read_from,
    tail_lines,
)

CAFE = "café ☕".encode()  # two- and three-byte characters


# --------------------------------------------------------------------------- TailReader


def test_tail_reader_never_returns_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    reader = TailReader(path)
    assert reader.read_lines() == []  # missing file
    with open(path, "ab") as handle:
        handle.write(b'{"experiment": 1}\n{"experim')
        handle.flush()
        assert reader.read_lines() == [b'{"experiment": 1}']
        assert reader.read_lines() == []
        handle.write(b'ent": 2}\n')
        handle.flush()
    assert reader.read_lines() == [b'{"experiment": 2}']
    assert reader.offset == path.stat().st_size


def test_tail_reader_restarts_after_truncation(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo\n")
    reader = TailReader(path)
    assert reader.read_lines() == [b"one", b"two"]
    path.write_bytes(b"x\n")
    assert reader.read_lines() == [b"x"]
    assert reader.truncated


def test_last_lines_reads_backwards(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(10_000)) + b"partial")
    assert last_lines(path, 3, chunk=64) == [b"line 9997", b"line 9998", b"line 9999"]
    assert last_lines(tmp_path / "missing", 3) == []


def test_tail_reader_restarts_when_the_file_is_replaced(tmp_path: Path) -> None:
    """A rotated file (a new inode) is read from its start even when it is already longer."""
    path = tmp_path / "log"
    path.write_bytes(b"one\n")
    reader = TailReader(path)
    assert reader.read_lines() == [b"one"]
    replacement = tmp_path / "log.new"
    replacement.write_bytes(b"alpha\nbeta\n")
    os.replace(replacement, path)
    assert reader.read_lines() == [b"alpha", b"beta"]
    assert reader.truncated
    assert reader.read_lines() == [] and not reader.truncated


def test_tail_reader_on_an_empty_file_and_one_that_appears_later(tmp_path: Path) -> None:
    path = tmp_path / "log"
    reader = TailReader(path)
    assert reader.read_lines() == [] and reader.offset == 0
    path.write_bytes(b"")
    assert reader.read_lines() == [] and reader.offset == 0 and not reader.truncated
    path.write_bytes(b"first\n\nsecond\n")
    assert reader.read_lines() == [b"first", b"second"]  # blank lines are skipped
    assert reader.offset == path.stat().st_size


def test_tail_reader_waits_for_a_split_multibyte_character(tmp_path: Path) -> None:
    path = tmp_path / "log"
    reader = TailReader(path)
    with open(path, "ab") as handle:
        handle.write(CAFE[:4])  # "caf" and the first byte of "é"
        handle.flush()
        assert reader.read_lines() == []
        handle.write(CAFE[4:] + b"\n")
        handle.flush()
    assert [line.decode() for line in reader.read_lines()] == ["café ☕"]


def test_tail_reader_starts_at_a_given_offset(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"old\nnew\n")
    assert TailReader(path, offset=4).read_lines() == [b"new"]


# --------------------------------------------------------------------------- whole and head


def test_read_complete_lines_leaves_out_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"a\nb\nhalf")
    assert read_complete_lines(path) == [b"a", b"b"]
    path.write_bytes(b"")
    assert read_complete_lines(path) == []
    assert read_complete_lines(tmp_path / "missing") == []
    path.write_bytes(b"no newline at all")
    assert read_complete_lines(path) == []


def test_head_lines_keeps_only_lines_complete_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"one\ntwo\nthree\n")
    assert head_lines(path, 100) == [b"one", b"two", b"three"]
    assert head_lines(path, 10) == [b"one", b"two"]  # "th" is cut off
    assert head_lines(path, 8) == [b"one", b"two"]
    assert head_lines(path, 3) == []  # "one" without its newline
    assert head_lines(tmp_path / "missing", 10) == []
    path.write_bytes(b"")
    assert head_lines(path, 10) == []
    path.write_bytes(CAFE + b"\n" + CAFE + b"\n")
    assert head_lines(path, len(CAFE) + 3) == [CAFE]  # the cut inside the second line drops it


# --------------------------------------------------------------------------- from the end


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 65536])
def test_tail_lines_at_every_chunk_size(tmp_path: Path, chunk: int) -> None:
    path = tmp_path / "log"
    body = b"".join(b"%d " % i + CAFE + b"\n" for i in range(50))
    path.write_bytes(body + b"torn " + CAFE[:4])
    lines, offset = tail_lines(path, 3, chunk=chunk)
    assert [line.decode() for line in lines] == [f"{i} café ☕" for i in (47, 48, 49)]
    assert offset == len(body)
    assert last_lines(path, 3, chunk=chunk) == lines
    assert end_of_last_line(path, chunk=chunk) == len(body)


def test_tail_lines_hands_over_to_a_tail_reader_without_gap_or_repeat(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"1\n2\n3\nhal")
    lines, offset = tail_lines(path, 2)
    assert lines == [b"2", b"3"]
    reader = TailReader(path, offset)
    with open(path, "ab") as handle:
        handle.write(b"f\n4\n")
    assert reader.read_lines() == [b"half", b"4"]


def test_tail_lines_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert tail_lines(path, 3) == ([], 0)  # missing
    assert end_of_last_line(path) == 0
    path.write_bytes(b"")
    assert tail_lines(path, 3) == ([], 0)
    assert end_of_last_line(path) == 0
    path.write_bytes(b"only a torn line")
    assert tail_lines(path, 3) == ([], 0)
    assert end_of_last_line(path) == 0
    path.write_bytes(b"a\nb\n")
    assert tail_lines(path, 10) == ([b"a", b"b"], 4)  # fewer lines than asked
    assert tail_lines(path, 0) == ([], 4)
    path.write_bytes(b"a\n\n\nb\n\n")
    assert tail_lines(path, 2, chunk=2) == ([b"a", b"b"], 7)  # blank lines are not lines


def test_last_lines_reads_backwards_from_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100)))
    assert last_lines(path, 2) == [b"line 98", b"line 99"]
    os.truncate(path, 30)  # "line 0\n" ... "line 4\n" is 35 bytes: "line 4" is torn
    assert last_lines(path, 2) == [b"line 2", b"line 3"]


# --------------------------------------------------------------------------- raw bytes


def test_last_bytes_of_a_short_and_a_long_file(tmp_path: Path) -> None:
    path = tmp_path / "diagnostics.md"
    assert last_bytes(path, 10) is None
    path.write_bytes(b"")
    assert last_bytes(path, 10) == (b"", 0)
    path.write_bytes(b"0123456789")
    assert last_bytes(path, 20) == (b"0123456789", 0)
    assert last_bytes(path, 4) == (b"6789", 6)


def test_last_bytes_never_starts_inside_a_character(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(CAFE)  # c a f é(2) space ☕(3)
    data, start = last_bytes(path, 4) or (b"", -1)  # a cut between characters
    assert (data.decode(), start) == (" ☕", len(CAFE) - 4)
    data, start = last_bytes(path, 3) or (b"", -1)
    assert (data.decode(), start) == ("☕", len(CAFE) - 3)
    data, start = last_bytes(path, 2) or (b"", -1)  # inside "☕": nothing whole is left
    assert (data, start) == (b"", len(CAFE))
    data, start = last_bytes(path, 5) or (b"", -1)  # inside "é"
    assert (data.decode(), start) == (" ☕", len(CAFE) - 4)


def test_read_from_copies_what_lies_past_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert list(read_from(path, 0)) == []
    path.write_bytes(b"")
    assert list(read_from(path, 0)) == []
    path.write_bytes(b"head " + CAFE)
    assert list(read_from(path, 5, chunk=2))[:2] == [b"ca", b"f\xc3"]
    assert b"".join(read_from(path, 5, chunk=2)) == CAFE
    assert list(read_from(path, 1000)) == []


# --------------------------------------------------------------------------- one module

ROOT = Path(__file__).resolve().parent.parent
OFFSET_READ = re.compile(r"\.seek\(|\bos\.pread\(|\bSEEK_(SET|CUR|END)\b")
ALLOWED = {
    "shared/tail.py",
    "daemon/service/store.py",  # cuts a torn last line before appending: a repair, not a read
}


def test_offset_reads_live_in_shared_tail() -> None:
    found = [
        str(path.relative_to(ROOT))
        for package in ("shared", "daemon", "tui")
        for path in sorted((ROOT / package).rglob("*.py"))
        if OFFSET_READ.search(path.read_text())
    ]
    assert set(found) <= ALLOWED, f"read files by offset through shared/tail: {found}"
