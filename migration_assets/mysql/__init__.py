"""MySQL side of the migration: connections, DDL, loads, merges, counts."""
