"""What runs outside the Dagster process: the Pipes entry point and the bundle that ships it."""
