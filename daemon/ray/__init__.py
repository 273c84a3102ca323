"""Ray as an executor: agent turns and measurements as Ray tasks on worker nodes."""
