"""The headless `expd` command line and its presentation (tables, follow, reports).

Runs in the CLI process. The only room allowed to import `daemon` or `tui`, and only lazily inside a
command's handler, so `expd status` never pays for Textual, pygit2 or anyio.
"""
