"""``bragi keys create|list|revoke``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bragi.auth import KeyStore

__all__ = ["register"]


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "keys", help="manage API keys", description="Create, list and revoke API keys."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key (shown once)")
    common(create)
    create.add_argument("name", help="a label for the key, e.g. the client's name")
    create.add_argument("--admin", action="store_true", help="may use the admin API")
    create.set_defaults(handler=_create)
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    common(listing)
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    common(revoke)
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(handler=_revoke)


def _store(args: argparse.Namespace) -> KeyStore:
    from bragi.cli.common import settings_from_args

    return KeyStore(settings_from_args(args).data_dir / "keys.db")


def _create(args: argparse.Namespace) -> int:
    with _store(args) as store:
        created = store.create(args.name, role="admin" if args.admin else "user")
    print(created.key)
    print(f"# id {created.record.id} ({created.record.role}); shown once, store it now", flush=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        records = store.list()
    print(f"{'ID':<18} {'NAME':<20} {'ROLE':<6} {'PREFIX':<15} {'CREATED':<20} STATUS")
    for r in records:
        status = "revoked" if r.revoked_at else "active"
        created = r.created_at.strftime("%Y-%m-%d %H:%M")
        print(f"{r.id:<18} {r.name[:20]:<20} {r.role:<6} {r.prefix:<15} {created:<20} {status}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.revoke(args.key_id)
    print(f"revoked {args.key_id}")
    return 0
