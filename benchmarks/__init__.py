"""Benchmarks: scale runs printing side-by-side ratios (not part of make test)."""
