"""Parquet days in S3: built from the exports, stored, counted per second."""
