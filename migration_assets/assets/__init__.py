"""The daily-partitioned assets of the migration (thin Dagster shell over the core modules)."""
