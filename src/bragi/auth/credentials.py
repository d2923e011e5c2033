"""Checking the key a caller sends: one function for every protocol (HTTP, WebSocket)."""

from __future__ import annotations

from collections.abc import Mapping

from bragi.auth.keystore import KeyRecord, KeyStore
from bragi.errors import AuthenticationError

__all__ = ["bearer_token", "check_key"]


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header."""
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_key(keystore: KeyStore, token: str | None) -> KeyRecord:
    """The active key ``token`` names, else AuthenticationError."""
    if token is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'. "
            "Create one with `bragi keys create NAME`."
        )
    record = keystore.verify(token)
    if record is None:  # not echoed: a response may end up in a log, with the key in it
        raise AuthenticationError("Incorrect API key provided.")
    return record
