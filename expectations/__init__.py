"""Great Expectations suites, one per data format; installed as package data (tunesmith.expectations)."""
