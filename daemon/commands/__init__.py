"""Work behind `expd` commands that runs in the CLI process, never in the daemon:
spawning a run, validate, finalize, the demo, carry-forward of earlier runs."""
