"""kbroker.cli: the `kbroker` command line (typer)."""
