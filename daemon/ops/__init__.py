"""What both processes do to the outside world: git, measurement commands, child processes."""
