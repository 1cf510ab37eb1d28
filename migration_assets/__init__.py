"""Migrate a live DynamoDB table into Aurora MySQL, one proven UTC day at a time."""
