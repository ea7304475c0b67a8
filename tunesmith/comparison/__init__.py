"""Method comparison: every training method on the same splits, measured the same way, in one table."""
