"""Proof of parity: per-second counts and schema facts, validated with Great Expectations."""
