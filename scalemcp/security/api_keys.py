"""API keys, stored only as SHA-256 digests.

An entry maps a key's digest to a principal and its scopes. Entries come from
``api_keys_file`` (one per line) and from the ``api_keys`` setting (one per list item,
so ``SCALEMCP_API_KEYS`` holds comma-separated entries)::

    # <sha256 of the key, 64 hex digits>  <principal>  [<scope> ...]
    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  alice  tools:read tools:call
    60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  ci-bot

Scopes are separated by spaces, as in OAuth's ``scope``; ``#`` starts a comment.
``scalemcp hash-key PRINCIPAL [SCOPE ...]`` makes a new key and prints its entry.

A presented key is hashed and compared with every stored digest by
``hmac.compare_digest``, without stopping at a match.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable, Mapping

import msgspec

from ..errors import InvalidCredentials
from .credentials import api_key
from .principal import Principal

__all__ = ["APIKeyAuthenticator", "APIKeyEntry", "hash_key", "hash_key_main", "load_api_keys"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[\x21-\x7e]+")


class APIKeyEntry(msgspec.Struct, frozen=True):
    digest: bytes
    principal: str
    scopes: frozenset[str]


def hash_key(key: str) -> str:
    """The stored form of an API key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_entry(line: str, where: str) -> APIKeyEntry | None:
    """One ``<sha256-hex> <principal> [<scope> ...]`` entry; None for a blank or comment."""
    fields = line.split("#", 1)[0].split()
    if not fields:
        return None
    if len(fields) < 2:
        raise ValueError(f"{where}: expected '<sha256-hex> <principal> [<scope> ...]'")
    digest, principal, *scopes = fields
    if not _HEX64.fullmatch(digest.lower()):
        raise ValueError(f"{where}: {digest[:12]!r}... is not a SHA-256 digest in hex (64 "
                         "hex digits); store hashes, not keys: see `scalemcp hash-key`")
    if not _NAME.fullmatch(principal):
        raise ValueError(f"{where}: bad principal {principal!r}")
    return APIKeyEntry(bytes.fromhex(digest), principal, frozenset(scopes))


def load_api_keys(path: str | None, entries: Iterable[str] = ()) -> list[APIKeyEntry]:
    """Entries from a file and from settings; a digest listed twice is an error."""
    parsed: list[APIKeyEntry] = []
    if path:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                entry = parse_entry(line, f"{path}:{number}")
                if entry is not None:
                    parsed.append(entry)
    for index, item in enumerate(entries):
        entry = parse_entry(item, f"api_keys[{index}]")
        if entry is not None:
            parsed.append(entry)
    if len({e.digest for e in parsed}) != len(parsed):
        raise ValueError("an API key digest is listed more than once")
    return parsed


class APIKeyAuthenticator:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, checked against digests."""

    def __init__(self, entries: Iterable[APIKeyEntry]) -> None:
        self._entries = tuple(entries)

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        digest = hashlib.sha256(api_key(headers).encode()).digest()
        found: APIKeyEntry | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        if found is None:
            raise InvalidCredentials("unknown API key")
        return Principal(found.principal, found.scopes)


def hash_key_main(argv: list[str]) -> int:
    """``scalemcp hash-key``: a new key on stderr, its entry line on stdout."""
    parser = argparse.ArgumentParser(
        prog="scalemcp hash-key",
        description="Make an API key entry: the key is printed once (stderr), the line to "
        "store in api_keys_file (stdout) holds only its SHA-256.")
    parser.add_argument("principal")
    parser.add_argument("scopes", nargs="*")
    parser.add_argument("--stdin", action="store_true",
                        help="hash a key read from stdin instead of making a new one")
    args = parser.parse_args(argv)
    key = sys.stdin.readline().strip() if args.stdin else "smk_" + secrets.token_urlsafe(32)
    names = [args.principal, *args.scopes]
    problem = "no key on stdin" if not key else None
    if any(not _NAME.fullmatch(n) or "#" in n for n in names):
        problem = "principal and scopes must be visible ASCII, without spaces or '#'"
    if problem:
        print(f"scalemcp hash-key: error: {problem}", file=sys.stderr)
        return 2
    if not args.stdin:
        print(f"API key (shown once): {key}", file=sys.stderr)
    print(" ".join([hash_key(key), *names]))
    return 0
