"""`zimage api-key`: create, list and revoke the API keys other systems use.

    zimage api-key create --name pim [--scopes generate,read] [--requests-per-minute N] [--images-per-day N]
    zimage api-key list
    zimage api-key revoke KEY_ID

`create` prints the key once; only the SHA-256 of its secret is stored, so a lost key is
revoked and replaced, never recovered.
"""

from __future__ import annotations

from zimage_assets.domain import api_keys
from zimage_assets.domain.timestamps import iso_z, utcnow
from zimage_assets.settings import Settings


def _state_db(settings: Settings):
    from resources.state_db import StateDB  # imported when used: `zimage --help` stays quick

    return StateDB(url=settings.db_url)


def create_key(state_db, *, name: str, scopes: tuple[str, ...], requests_per_minute: int, images_per_day: int) -> tuple[str, str]:
    """(key id, the key to show once)."""
    key_id, key, digest = api_keys.new_key()
    state_db.add_api_key(
        {
            "key_id": key_id,
            "name": name,
            "secret_sha256": digest,
            "scopes": scopes,
            "requests_per_minute": requests_per_minute,
            "images_per_day": images_per_day,
            "created_at": utcnow(),
            "revoked_at": None,
        }
    )
    return key_id, key


def add_parser(sub, error) -> None:
    keys = sub.add_parser("api-key", help="create, list and revoke API keys")
    actions = keys.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new key (shown once)")
    create.add_argument("--name", required=True, help="who uses it, e.g. the PIM")
    create.add_argument("--scopes", default="generate,read", help="comma-separated: generate, read (default both)")
    create.add_argument("--requests-per-minute", type=int, default=0, help="default ZIMAGE_API_REQUESTS_PER_MINUTE")
    create.add_argument("--images-per-day", type=int, default=0, help="default ZIMAGE_API_IMAGES_PER_DAY")
    create.set_defaults(handler=lambda args, settings: cmd_create(args, settings, error))
    listing = actions.add_parser("list", help="every key (never their secrets)")
    listing.set_defaults(handler=cmd_list)
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=lambda args, settings: cmd_revoke(args, settings, error))


def cmd_create(args, settings: Settings, error) -> int:
    try:
        scopes = api_keys.parse_scopes(args.scopes)
    except ValueError as exc:
        raise error(str(exc)) from None
    if args.requests_per_minute < 0 or args.images_per_day < 0:
        raise error("limits must be positive")
    key_id, key = create_key(
        _state_db(settings),
        name=args.name,
        scopes=scopes,
        requests_per_minute=args.requests_per_minute or settings.api_requests_per_minute,
        images_per_day=args.images_per_day or settings.api_images_per_day,
    )
    print(f"created API key {key_id} ({args.name}; scopes {', '.join(scopes)})")
    print("the key (shown once, only its hash is kept):")
    print(key)
    return 0


def cmd_list(args, settings: Settings) -> int:
    rows = _state_db(settings).api_keys()
    for row in rows:
        state = f"revoked {iso_z(row['revoked_at'])}" if row["revoked_at"] else "active"
        print(
            f"{row['key_id']}  {row['name']}  scopes={','.join(row['scopes'])}  {row['requests_per_minute']}/min  "
            f"{row['images_per_day']} images/day  created {iso_z(row['created_at'])}  {state}"
        )
    if not rows:
        print("no API keys yet: zimage api-key create --name NAME")
    return 0


def cmd_revoke(args, settings: Settings, error) -> int:
    if not _state_db(settings).revoke_api_key(args.key_id, utcnow()):
        raise error(f"no active API key {args.key_id!r}")
    print(f"revoked API key {args.key_id}")
    return 0
