"""Example run configurations; installed as package data (tunesmith.configs)."""
