"""Structured logs: one line per event, with the request's fields, never a credential.

Fields bound with :func:`bind` (request id, hashed session id, MCP method, JSON-RPC id) live
in a context variable, so every line a request's tasks write carries them: Trio copies the
spawning task's context into a child task, which is why long-lived background tasks start
at lifespan startup (they would otherwise carry one request's fields forever).

Two formats (``log_format``): ``text`` (stderr, human-readable) and ``json`` (stdout, one
object per line: ``timestamp``, ``level``, ``logger``, ``message``, the bound fields,
``trace_id``/``span_id`` when tracing, then the event's own fields). Both formats mask the
password of any ``scheme://user:password@`` URL in messages and tracebacks, as a net
under :func:`redact_url`, which code that logs a URL calls itself.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "bind",
    "configure_logging",
    "current_fields",
    "hash_id",
    "redact_text",
    "redact_url",
]

#: The fields bound in this context; set it directly on hot paths (see ``observe``).
fields_var: ContextVar[dict[str, Any] | None] = ContextVar("scalemcp_log_fields", default=None)
#: Set by :mod:`.tracing` once tracing is on: the current (trace id, span id).
trace_ids: Callable[[], tuple[str, str] | None] | None = None
_SECRET_PARAM = re.compile(r"pass|secret|token|auth|key", re.IGNORECASE)
#: scheme://user:password@ or scheme://token@ inside free text.
_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s:/@]*)(:[^\s/@]*)?@")
_encoder = msgspec.json.Encoder(enc_hook=str)
_CHATTY = ("coredis",)


def redact_url(url: str) -> str:
    """``url`` without its password (``user:***@``) or secret-looking query values.

    Works for multi-host URLs (``redis+sentinel://:pw@h1:26379,h2:26379/mymaster``); a URL
    that cannot be parsed comes back as ``<redacted URL>``; a fragment is dropped.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<redacted URL>"
    out = url.split("#", 1)[0]
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        out = out.replace(parts.netloc, f"{user}:***@{hosts}" if colon else f"***@{hosts}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs],
                          safe="*")
        out = out.partition("?")[0] + "?" + query
    return out


def redact_text(text: str) -> str:
    """Mask the userinfo password of every URL in ``text`` (a user name is kept)."""
    if "@" not in text:
        return text
    return _URL_USERINFO.sub(_mask, text)


def _mask(m: re.Match[str]) -> str:
    scheme, user, password = m.group(1), m.group(2), m.group(3)
    return f"{scheme}{user}:***@" if password is not None else f"{scheme}***@"


def hash_id(value: str) -> str:
    """A short, stable, one-way tag for a session id (which works like a credential)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def current_fields() -> dict[str, Any]:
    """The fields bound in this context (a copy)."""
    return dict(fields_var.get() or {})


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line written in this context until the block ends."""
    token = fields_var.set({**(fields_var.get() or {}), **fields})
    try:
        yield
    finally:
        fields_var.reset(token)


def _context(record: logging.LogRecord) -> dict[str, Any]:
    out = dict(fields_var.get() or {})
    ids = trace_ids() if trace_ids is not None else None
    if ids is not None:
        out["trace_id"], out["span_id"] = ids
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        out.update(extra)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        out: dict[str, Any] = {
            "timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            "pid": record.process,
        }
        out.update(_context(record))
        if record.exc_info:
            out["exception"] = redact_text(self.formatException(record.exc_info))
        elif record.stack_info:
            out["stack"] = redact_text(self.formatStack(record.stack_info))
        return _encoder.encode(out).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact_text(super().format(record))
        fields = _context(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def configure_logging(level: str, log_format: Literal["text", "json"] = "text") -> None:
    """Route every logger (scalemcp's, Hypercorn's, the app's) through one formatted handler."""
    json = log_format == "json"
    handler = logging.StreamHandler(sys.stdout if json else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.set_name("scalemcp")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "scalemcp"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    hypercorn = logging.getLogger("hypercorn.error")
    if not any(isinstance(f, _RunningOn) for f in hypercorn.filters):
        hypercorn.addFilter(_RunningOn())
    for name in _CHATTY:  # their info lines (connection retries) are noise unless debugging
        logging.getLogger(name).setLevel(
            logging.NOTSET if level == "debug" else logging.WARNING)


class _RunningOn(logging.Filter):
    """Drops Hypercorn's per-worker "Running on ..." line: the supervisor says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Running on"))
