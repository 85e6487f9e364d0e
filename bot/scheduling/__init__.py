"""Periodic jobs (retention, quiet-incident flags) and the lease that keeps them to one process."""
