"""Prefect flows and the `tunesmith` command line."""

from tunesmith.quiet import filter_known_warnings

# Before any flow module imports the libraries: some warn at import time (see tunesmith/quiet.py).
filter_known_warnings()
