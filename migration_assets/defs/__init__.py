"""The Dagster shell: assets, checks, sensors, schedules, jobs and resources, per domain."""
