"""The ``bragi`` command."""

from bragi.cli.main import main

__all__ = ["main"]
