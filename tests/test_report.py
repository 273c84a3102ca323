"""`expd report`: Markdown and self-contained HTML for a real daemon run and a hand-built one."""

from __future__ import annotations

import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.paths import RunPaths
from shared.schema import ResultRecord
from tests.fake_runs import FakeRun, git_repo, make_run, result
from tests.repos import expd, make_repo, results, start, wait_finished

SUMMARY = "## What worked\nRaising x towards the target.\n"


class Page(HTMLParser):
    """Collects what the tests look at: table rows, chart markers, scripts and URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.points: list[dict[str, str]] = []
        self.svgs = 0
        self.scripts = 0
        self.in_body = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append(a.get("class", ""))
        elif tag == "g" and "point" in a.get("class", "").split():
            self.points.append(a)
        elif tag == "svg":
            self.svgs += 1
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.in_body = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def assert_offline(html: str) -> None:
    low = html.lower()
    assert "http" not in low and "<script" not in low and "<link" not in low


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunPaths]:
    repo = make_repo(
        tmp_path_factory.mktemp("report") / "repo",
        max_experiments=5,
        decide='policy = "fixed"\nrepeats = 3\nmin_effect = 0.01',
    )
    paths = start(repo, env={"TARGET": "3"})
    assert wait_finished(paths).phase == "complete"
    paths.summary.write_text(SUMMARY)
    return repo, paths


def test_markdown_of_a_real_run(real_run: tuple[Path, RunPaths]) -> None:
    repo, paths = real_run
    proc = expd("report", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    records = results(paths)
    table = [line for line in md.splitlines() if line.startswith("| ") and "status" not in line]
    assert len(table) == len(records) == 6
    assert table[1].startswith("| 1 | keep | 3 |")
    assert "**Baseline → best**: 4 → 1 (experiment 3)" in md
    assert "75.0% better" in md and "max_experiments" in md
    assert "Raising x towards the target." in md
    assert "kept: 1 2 3" in md


def test_html_of_a_real_run(real_run: tuple[Path, RunPaths], tmp_path: Path) -> None:
    repo, paths = real_run
    out = tmp_path / "report.html"
    proc = expd("report", "--format", "html", "--output", str(out), cwd=repo)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    html = out.read_text()
    assert_offline(html)
    page = parse(html)
    records = results(paths)
    assert page.rows == [r.status for r in records]
    assert page.svgs == 1 and page.scripts == 0
    assert [int(p["data-experiment"]) for p in page.points] == [r.experiment for r in records]
    kept = [int(p["data-experiment"]) for p in page.points if "keep" in p["class"].split()]
    assert kept == [1, 2, 3]
    assert "baseline-line" in html and "best-line" in html
    assert "Raising x towards the target." in "".join(page.text)


def _records() -> list[ResultRecord]:
    keep = result(1, "keep", 4.0, description="tweak <script>alert(1)</script> a|b")
    keep.samples = [3.8, 4.0, 4.3]
    keep.evidence = {
        "policy": "sequential",
        "effect": 0.2,
        "interval": [0.1, 0.3],
        "runs": {"candidate": 3, "incumbent": 4},
        "relative": True,
    }
    crash = result(3, "crash", None)
    crash.evidence = {}
    return [
        result(0, "baseline", 5.0),
        keep,
        result(2, "discard", 4.5),
        crash,
        result(4, "measurement_failure", None),
    ]


@pytest.fixture
def fake_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    repo = git_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    run = make_run(
        repo, phase="complete", baseline=5.0, best=4.0, best_experiment=1, keeps=1, discards=1
    )
    run.add_results(*_records())
    return run


def test_evidence_crashes_and_escaping(
    fake_run: FakeRun, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.cli.main import main

    assert main(["report", "--format", "html"]) == 0
    html = capsys.readouterr().out
    assert_offline(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = parse(html)
    assert page.rows == ["baseline", "keep", "discard", "crash", "measurement_failure"]
    assert len(page.points) == 5
    assert 'class="interval"' in html  # the keep's samples spread 3.8–4.3
    assert "+10.0% … +30.0%" in html and "3 vs 4" in html and "+20.0%" in html
    assert "Summary" not in html  # no summary.md
    assert main(["report"]) == 0
    md = capsys.readouterr().out
    assert "tweak &lt;script&gt;alert(1)&lt;/script&gt; a\\|b" in md
    assert md.count("\n| ") == 6  # header + five experiments


def test_bad_input_is_one_line_exit_1(fake_run: FakeRun, tmp_path: Path) -> None:
    unknown = expd("report", "nope/123", cwd=fake_run.repo)
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1, unknown.stderr
    assert "no run matching" in unknown.stderr
    bad = expd("report", "--output", str(tmp_path / "missing" / "r.md"), cwd=fake_run.repo)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert "cannot write the report" in bad.stderr
    fmt = expd("report", "--format", "pdf", cwd=fake_run.repo)
    assert fmt.returncode == 1 and fmt.stderr.count("\n") == 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_html_renders_in_chromium(real_run: tuple[Path, RunPaths], tmp_path: Path) -> None:
    repo, _ = real_run
    html, png = tmp_path / "report.html", tmp_path / "shot.png"
    assert expd("report", "--format", "html", "--output", str(html), cwd=repo).returncode == 0
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1200,900",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 900)
    assert len(data) > 20_000  # text, a chart and a table; a blank page compresses to ~5 kB
