"""`expd report`: write a run's report as Markdown or HTML to stdout or a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared import report, runs
from shared.errors import UserError


def cmd_report(args: argparse.Namespace) -> int:
    ref = runs.resolve(args.run)
    text = report.render(report.load(ref), args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    print(f"expd: wrote {out}", file=sys.stderr)
    return 0
