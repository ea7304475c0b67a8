"""Prefect tasks: each a thin wrapper that runs one library stage (tunesmith.<stage>) and logs it."""
