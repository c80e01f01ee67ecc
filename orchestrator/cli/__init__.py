"""Command-line interface (typer): one thin module per verb. The only layer that touches argv, the
process environment, exit codes and the terminal; it turns OrcError into one line and an exit code."""
