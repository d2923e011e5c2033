"""API keys: the hashed key store, the first-boot bootstrap, checking a caller's key."""

from bragi.auth.credentials import bearer_token, check_key
from bragi.auth.keystore import (
    EPHEMERAL_PREFIX,
    KEY_PREFIX,
    LAST_USED_INTERVAL,
    ROLES,
    Clock,
    CreatedEphemeralKey,
    CreatedKey,
    EphemeralKey,
    KeyRecord,
    KeyRole,
    KeyStore,
)

__all__ = [
    "EPHEMERAL_PREFIX",
    "KEY_PREFIX",
    "LAST_USED_INTERVAL",
    "ROLES",
    "Clock",
    "CreatedEphemeralKey",
    "CreatedKey",
    "EphemeralKey",
    "KeyRecord",
    "KeyRole",
    "KeyStore",
    "bearer_token",
    "check_key",
]
