"""`python -m longtail.cli`: the same command line as the `longtail` script."""

from longtail.cli import app

app()
