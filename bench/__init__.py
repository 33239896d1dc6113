"""Benchmarks (`make bench`): results are written to docs/performance.md, never asserted in tests."""
