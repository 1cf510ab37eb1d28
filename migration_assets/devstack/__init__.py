"""The embedded local stack: a moto server for AWS, a throwaway MariaDB, synthetic data.

Nothing here is used in production; it exists so a newcomer can run the whole pipeline
on one machine with no cloud account, and so tests talk to real servers. The one exception
is `export_writer`'s line, gzip and manifest writing, which scan mode reuses so that its
output has exactly the layout of a real export.
"""
