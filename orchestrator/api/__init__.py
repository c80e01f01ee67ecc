"""Python API over a project (the same calls the CLI makes) and the pytest plugin."""
