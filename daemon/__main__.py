"""`python -m daemon RUN_DIR`: the detached daemon process (spawned by `expd start`/`resume` and
`expd bakeoff start`/`resume`). Which daemon runs is the manifest's `kind`: a program run's loop
(daemon/service) or a bakeoff run's matrix (daemon/bakeoff)."""

import sys
from pathlib import Path

from shared import codec
from shared.bakeoffs.schema import ManifestKind
from shared.errors import ContractError


def _kind(argv: list[str]) -> str:
    """The run's kind; "program" when it cannot be read (that daemon reports why)."""
    if len(argv) != 1:
        return "program"
    try:
        return codec.read(Path(argv[0]) / "run.json", ManifestKind).kind
    except ContractError:
        return "program"


if _kind(sys.argv[1:]) == "bakeoff":
    from daemon.bakeoff.main import main
else:
    from daemon.service.main import main

raise SystemExit(main())
