"""Tunesmith's stages as plain Python: one package per stage, each with a thin Prefect task wrapper."""
