"""Bakeoff runs: the daemon's side (daemon process)."""
