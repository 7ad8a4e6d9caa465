"""Test suites shipped with datakeep for backends and indexes (need pytest, hypothesis)."""
