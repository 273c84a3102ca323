"""The detached daemon that owns a run's loop. Never imported by `tui`."""
