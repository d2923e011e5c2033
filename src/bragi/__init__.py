"""Bragi: a self-hosted speech server behind the OpenAI Audio API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
