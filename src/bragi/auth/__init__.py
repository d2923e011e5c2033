"""API keys: the hashed key store and the first-boot bootstrap."""

from bragi.auth.keystore import (
    KEY_PREFIX,
    LAST_USED_INTERVAL,
    ROLES,
    Clock,
    CreatedKey,
    KeyRecord,
    KeyRole,
    KeyStore,
)

__all__ = [
    "KEY_PREFIX",
    "LAST_USED_INTERVAL",
    "ROLES",
    "Clock",
    "CreatedKey",
    "KeyRecord",
    "KeyRole",
    "KeyStore",
]
