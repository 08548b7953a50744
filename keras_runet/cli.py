"""The ``runet`` command line: ``runet <subcommand> --help`` for each.

Library code logs and raises; only this module prints. A user mistake (missing directory,
unknown model, bad fold, ...) is reported as one line on stderr with exit code 2 and no
traceback; a run that fails (training that diverges) as one line with exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules under keras_runet.commands, in the order --help lists them.
COMMANDS = [
    "synth",
    "prepare",
    "train",
    "cv",
    "evaluate",
    "demo",
    "tune",
    "export",
    "predict",
    "info",
]


class UsageError(Exception):
    """A mistake of the user's (bad path, unknown name, ...): one line, exit code 2."""


class RunFailed(Exception):
    """The work itself failed (e.g. the training diverged): one line, exit code 1."""


def _available_commands():
    mods = []
    for name in COMMANDS:
        try:
            mods.append(importlib.import_module(f"keras_runet.commands.{name}"))
        except ModuleNotFoundError as err:
            # Only skip commands that do not exist (yet); a broken import must surface.
            if err.name != f"keras_runet.commands.{name}":
                raise
    return mods


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one `--help` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="runet",
        description="RU-Net (Refining U-Net) for robust 2D echocardiography segmentation.",
    )
    from keras_runet.version import __version__

    parser.add_argument("--version", action="version", version=f"keras-runet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _available_commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UsageError as err:
        print(f"runet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"runet {args.command}: failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"runet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run the imported module's main, so that commands raise the same UsageError class.
    from keras_runet.cli import main as _main

    sys.exit(_main())
