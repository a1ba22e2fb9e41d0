"""The ``scalemcp`` command: ``serve`` (flags generated from the settings), ``bench``,
``hash-key`` and ``dev-cert``."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from ._version import __version__
from .config import OPTIONS, Option, load_config
from .config.options import SECTION_TITLES
from .observability.logs import configure_logging, redact_text
from .server import ConfigError, load_app, run

__all__ = ["main", "serve_parser"]

#: Setting names inside descriptions that become flags in ``--help``.
_NAMED = re.compile(r"\b(" + "|".join(
    sorted((o.name for o in OPTIONS if "_" in o.name or o.name.endswith("file")),
           key=len, reverse=True)) + r")\b")


def flag_help(opt: Option) -> str:
    """``opt``'s description as ``--help`` shows it: settings named by their flags."""
    text = _NAMED.sub(lambda m: "--" + m.group(1).replace("_", "-"), opt.description)
    text = re.sub(r"\bauth=(\w+)", r"--auth \1", text)
    if opt.kind == "bool":
        default = "on" if opt.default else "off"
    elif opt.kind == "list":
        default = ", ".join(opt.default) if opt.default else "none"
        text += " Repeat the flag for several values."
    else:
        default = "unset" if opt.default is None else str(opt.default)
    return f"{text} (default: {default}; env {opt.env})".replace("%", "%%")


class _Parser(argparse.ArgumentParser):
    """Suggests the flag meant when one is misspelt."""

    def error(self, message: str) -> NoReturn:
        match = re.match(r"unrecognized arguments: (--[\w-]+)", message)
        if match:
            flags = [s for a in self._actions for s in a.option_strings]
            close = difflib.get_close_matches(match.group(1), flags, n=1)
            if close:
                message += f" (did you mean {close[0]}?)"
        super().error(message)


def serve_parser() -> argparse.ArgumentParser:
    """The parser of ``scalemcp serve``: one flag per setting, grouped by section."""
    p = _Parser(
        prog="scalemcp serve", usage="scalemcp serve [OPTIONS] MODULE:ATTR", allow_abbrev=False,
        description="Serve an app (MODULE:ATTR, a scalemcp.App) over HTTP. Every option can "
        "also be set as the environment variable SCALEMCP_<NAME> or in a TOML file "
        "(--config); a flag wins over the environment, which wins over the file. Every "
        "setting is described in docs/configuration.md.")
    p.add_argument("target", metavar="MODULE:ATTR", help="the scalemcp.App to serve, e.g. "
                   "examples.quickstart:app")
    p.add_argument("--config", dest="config_file", metavar="FILE",
                   help="a TOML file of settings (env SCALEMCP_CONFIG)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in OPTIONS:
        group = groups.get(opt.section)
        if group is None:
            group = groups[opt.section] = p.add_argument_group(SECTION_TITLES[opt.section])
        if opt.kind == "bool":
            group.add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction,
                               default=None, help=flag_help(opt))
        elif opt.kind == "list":
            group.add_argument(opt.flag, dest=opt.name, action="append", default=None,
                               metavar="VALUE", help=flag_help(opt))
        else:
            metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else "VALUE"
            group.add_argument(opt.flag, dest=opt.name, default=None, metavar=metavar,
                               help=flag_help(opt))
    return p


def _serve(argv: list[str]) -> int:
    args = vars(serve_parser().parse_args(argv))
    target = args.pop("target")
    config_file = args.pop("config_file")
    try:
        config = load_config(args, config_file=config_file)
        configure_logging(config.ops.log_level, config.ops.log_format)
        run(target, config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"scalemcp: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _worker(argv: list[str]) -> int:
    parser = serve_parser()
    parser.prog = "scalemcp worker"
    parser.usage = "scalemcp worker [OPTIONS] MODULE:ATTR"
    parser.description = ("Run an app's durable tasks (docs/tasks.md) without serving HTTP: "
                          "claims them from the Redis backend (--redis-url). Takes the "
                          "options of scalemcp serve; the task_* ones matter here.")
    args = vars(parser.parse_args(argv))
    target = args.pop("target")
    config_file = args.pop("config_file")
    try:
        config = load_config(args, config_file=config_file)
        configure_logging(config.ops.log_level, config.ops.log_format)
        import trio

        from .task_worker import run_task_worker

        trio.run(run_task_worker, load_app(target), config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"scalemcp: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _bench(argv: list[str]) -> int:
    from .loadgen.cli import main as bench_main

    return bench_main(argv)


def _hash_key(argv: list[str]) -> int:
    from .security.api_keys import hash_key_main

    return hash_key_main(argv)


def _dev_cert(argv: list[str]) -> int:
    from .security.dev_cert import dev_cert_main

    return dev_cert_main(argv)


_COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "serve": (_serve, "serve an app over HTTP (scalemcp serve --help)"),
    "worker": (_worker, "run an app's durable tasks, without HTTP (scalemcp worker --help)"),
    "bench": (_bench, "load-test an MCP server (scalemcp bench --help; see bench/README.md)"),
    "hash-key": (_hash_key, "make an API key and its hashed entry for api_keys_file"),
    "dev-cert": (_dev_cert, "write a self-signed certificate for local HTTPS"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _COMMANDS:
        return _COMMANDS[argv[0]][0](argv[1:])
    parser = argparse.ArgumentParser(
        prog="scalemcp", description="Serve MCP tools, resources and prompts over HTTP, at "
        "scale.", epilog="Start with: scalemcp serve examples.quickstart:app")
    parser.add_argument("--version", action="version", version=f"scalemcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, about) in _COMMANDS.items():
        sub.add_parser(name, help=about, add_help=False)
    parser.parse_args(argv)  # --help, --version, or a usage error naming the commands
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
