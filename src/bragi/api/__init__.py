"""The HTTP API: the app factory, routers, schemas and error handling."""

from bragi.api.app import create_app

__all__ = ["create_app"]
