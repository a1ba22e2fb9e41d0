"""``skill://`` URIs and MIME types of skill files.

A URI is made from path segments, each percent-encoded, and a request's URI is only ever
looked up, exactly, among the URIs a scan made: no path is built from what a client sends.
``check_uri`` refuses the shapes a traversal attempt takes (``..``, encoded separators,
backslashes) before the lookup, so they get a clear -32602 rather than "not found".
"""

from __future__ import annotations

import mimetypes
import re
from urllib.parse import quote, unquote

from ...errors import InvalidParams

__all__ = [
    "DIRECTORY_MIME",
    "SCHEME",
    "SKILL_FILE",
    "check_prefix",
    "check_uri",
    "is_textual",
    "join",
    "mime_type_of",
    "segment_name",
    "usable_name",
]

SCHEME = "skill://"
SKILL_FILE = "SKILL.md"
DIRECTORY_MIME = "inode/directory"
#: RFC 3986 pchar minus "%" (prefix segments are taken as given, so they must need no
#: encoding); the first one is the authority, which additionally may not hold ":" or "@".
_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]+")
_AUTHORITY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+")
_SAFE = "-._~!$&'()*+,;=:@"
_ENCODED_SEPARATOR = re.compile(r"%(?:2[fFeE]|5[cC]|00)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MIME = {
    ".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain",
    ".py": "text/x-python", ".sh": "text/x-shellscript", ".bash": "text/x-shellscript",
    ".js": "text/javascript", ".mjs": "text/javascript", ".ts": "text/x-typescript",
    ".json": "application/json", ".yaml": "application/yaml", ".yml": "application/yaml",
    ".toml": "application/toml", ".csv": "text/csv", ".html": "text/html",
    ".xml": "application/xml", ".svg": "image/svg+xml", ".sql": "application/sql",
    ".rb": "text/x-ruby", ".go": "text/x-go", ".rs": "text/x-rust", ".java": "text/x-java",
    ".ipynb": "application/x-ipynb+json", ".pdf": "application/pdf", ".png": "image/png",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".zip": "application/zip", ".gz": "application/gzip", ".wasm": "application/wasm",
}
_TEXTUAL = frozenset({
    "application/json", "application/yaml", "application/toml", "application/xml",
    "application/sql", "application/x-ipynb+json", "application/javascript", "image/svg+xml",
    "application/x-sh", "application/x-python-code",
})
# Python's built-in table only (no /etc/mime.types): every node answers alike.
_GUESS = mimetypes.MimeTypes()


def join(segments: list[str]) -> str:
    """The URI of a path given as already-valid (encoded) segments."""
    return SCHEME + "/".join(segments)


def encode(name: str) -> str:
    """A file or directory name as one URI path segment."""
    return quote(name, safe=_SAFE)


def segment_name(uri: str) -> str:
    """The decoded last segment of a URI (a resource's ``name``)."""
    return unquote(uri.rsplit("/", 1)[-1])


def usable_name(name: str) -> bool:
    """False for names a skill tree may not hold: hidden ones, and ones with a backslash
    or a control character (no client could address them unambiguously)."""
    return not (name.startswith(".") or "\\" in name or _CONTROL.search(name))


def check_prefix(prefix: str) -> list[str]:
    """The segments of a URI prefix (``acme/billing``); ValueError says what is wrong."""
    segments = prefix.strip("/").split("/") if prefix.strip("/") else []
    for index, segment in enumerate(segments):
        pattern = _AUTHORITY if index == 0 else _SEGMENT
        if segment in ("", ".", "..") or pattern.fullmatch(segment) is None:
            raise ValueError(f"skill prefix {prefix!r}: segment {segment!r} is not a valid "
                             f"URI {'authority' if index == 0 else 'path segment'} (use "
                             "letters, digits and -._~ only)")
    return segments


def check_uri(uri: str) -> None:
    """Refuse a ``skill://`` URI shaped like a traversal attempt (InvalidParams, -32602)."""
    if not uri.startswith(SCHEME):
        return
    rest = uri[len(SCHEME):]
    why = None
    if "\\" in rest or _CONTROL.search(rest):
        why = "it holds a backslash or a control character"
    elif "?" in rest or "#" in rest:
        why = "skill URIs have no query or fragment"
    elif _ENCODED_SEPARATOR.search(rest):
        why = "it holds an encoded '/', '.', '\\' or NUL"
    elif any(s in ("", ".", "..") for s in rest.split("/")):
        why = "it holds an empty, '.' or '..' segment"
    if why is not None:
        raise InvalidParams(f"invalid skill URI {uri!r}: {why}", {"uri": uri})


def mime_type_of(name: str, data: bytes) -> str:
    """The MIME type of a skill file (``text/markdown`` for SKILL.md)."""
    lowered = name.lower()
    dot = lowered.rfind(".")
    if dot > 0 and lowered[dot:] in _MIME:
        return _MIME[lowered[dot:]]
    guessed, encoding = _GUESS.guess_type(name, strict=False)
    if guessed is not None and encoding is None:
        return guessed
    return "text/plain" if _utf8_text(data) else "application/octet-stream"


def is_textual(mime_type: str, data: bytes) -> bool:
    """True if the file is served as ``text`` (else as a base64 ``blob``)."""
    textual = mime_type.startswith("text/") or mime_type in _TEXTUAL
    return textual and _utf8_text(data)


def _utf8_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
