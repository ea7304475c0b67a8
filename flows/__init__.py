"""Prefect flows and the `tunesmith` command line."""
