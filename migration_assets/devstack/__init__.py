"""The embedded local stack: a moto server for AWS, a throwaway MariaDB, synthetic data.

Nothing here is used in production; it exists so a newcomer can run the whole pipeline
on one machine with no cloud account, and so tests talk to real servers.
"""
