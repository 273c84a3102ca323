"""Agent adapters: each runs one experiment in the worktree and streams typed events."""
