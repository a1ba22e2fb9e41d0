"""``scalemcp`` command line: ``serve`` (flags generated from Config) and ``bench``."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any

import msgspec

from .config import FIELD_HELP, Config, load_config
from .ops.logs import configure_logging, redact_text
from .server import ConfigError, run

__all__ = ["main"]


def _serve_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="serve an app over HTTP", description="Serve MODULE:ATTR over HTTP. "
        "Every option can also be set as SCALEMCP_<NAME> or in a TOML file (--config).")
    p.add_argument("target", metavar="MODULE:ATTR", help="the scalemcp.App to serve")
    p.add_argument("--config", dest="config_file", help="TOML config file")
    for field in msgspec.structs.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        tp = _base_type(field.type)
        about = FIELD_HELP.get(field.name, "").replace("%", "%%")
        if tp is bool:
            p.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                           default=None, help=about)
        elif tp is list:
            p.add_argument(flag, dest=field.name, action="append", default=None,
                           help=f"{about} (repeatable)")
        else:
            p.add_argument(flag, dest=field.name, default=None,
                           help=f"{about} (default: {field.default!r})")
    return p


def _base_type(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return origin or tp


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bench":
        from .bench.cli import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] == "hash-key":
        from .security.api_keys import hash_key_main

        return hash_key_main(argv[1:])
    if argv and argv[0] == "dev-cert":
        from .security.dev_cert import dev_cert_main

        return dev_cert_main(argv[1:])
    if argv and argv[0] == "config-reference":
        from .config_reference import main as reference_main

        return reference_main(argv[1:])
    parser = argparse.ArgumentParser(prog="scalemcp", description="Serve MCP at scale.")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    sub.add_parser("bench", help="load-test an MCP server (scalemcp bench --help)")
    sub.add_parser("hash-key", help="make an API key and its hashed entry for api_keys_file")
    sub.add_parser("dev-cert", help="write a self-signed certificate for local HTTPS")
    sub.add_parser("config-reference", help="write docs/configuration.md from the settings")
    args = vars(parser.parse_args(argv))
    args.pop("command")
    target = args.pop("target")
    config_file = args.pop("config_file")
    try:
        config = load_config(args, config_file=config_file)
        configure_logging(config)
        run(target, config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"scalemcp: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
