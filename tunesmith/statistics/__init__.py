"""Statistics the gates decide from."""
