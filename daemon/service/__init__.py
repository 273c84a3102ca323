"""Everything here runs inside the detached daemon process (`python -m daemon RUN_DIR`)."""
