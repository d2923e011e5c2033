"""API keys: the hashed key store and the first-boot bootstrap."""

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
]
