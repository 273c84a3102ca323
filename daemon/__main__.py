"""`python -m daemon RUN_DIR`: the detached daemon process (spawned by `expd start`/`resume`)."""

from daemon.service.main import main

raise SystemExit(main())
