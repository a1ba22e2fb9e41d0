"""Configuration: one frozen, typed Struct of sections; flags, env vars and TOML mirror it.

Precedence: CLI flag > ``SCALEMCP_<OPTION>`` environment variable > TOML file (``--config``)
> default. Units are in the names; unknown keys are refused with their name.
"""

from .options import OPTIONS, Option, load_config, option
from .settings import (
    MIN_STATE_KEY_CHARS,
    AuthSettings,
    Config,
    ConnectionSettings,
    LimitSettings,
    OpsSettings,
    RedisSettings,
    RequestStateSettings,
    ServerSettings,
    SessionSettings,
    SseSettings,
    TaskSettings,
)

__all__ = [
    "MIN_STATE_KEY_CHARS",
    "OPTIONS",
    "AuthSettings",
    "Config",
    "ConnectionSettings",
    "LimitSettings",
    "OpsSettings",
    "Option",
    "RedisSettings",
    "RequestStateSettings",
    "ServerSettings",
    "SessionSettings",
    "SseSettings",
    "TaskSettings",
    "load_config",
    "option",
]
