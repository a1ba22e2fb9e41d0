"""Entry point Hypercorn imports in each worker process (see ``server.run``)."""

from __future__ import annotations

import os

import msgspec

from .config import Config
from .observability.logs import configure_logging
from .server import asgi_app, load_app

_config = msgspec.json.decode(os.environ["SCALEMCP_RESOLVED_CONFIG"], type=Config)
configure_logging(_config.ops.log_level, _config.ops.log_format)
application = asgi_app(load_app(os.environ["SCALEMCP_APP"]), _config)
