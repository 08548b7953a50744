"""The ``runet`` command line: ``runet <subcommand> --help`` for each.

Library code logs and raises; only this module prints. A user mistake (missing directory,
unknown model, bad fold, ...) is reported as one line on stderr with exit code 2 and no
traceback; a run that fails (training that diverges) as one line with exit code 1.

Building the parser imports no TensorFlow or Keras: the command modules import their heavy
dependencies inside ``run``, and :func:`main` declares the options of the one subcommand
it runs only (``runet --help`` and ``--version`` take a fraction of a second;
tests/test_config.py checks it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable

# TensorFlow's C++ INFO / WARNING lines (CUDA probing, CPU features) off, before any
# command imports it; a value set by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_runet.commands._common import RunFailed, UsageError  # noqa: E402

__all__ = ["COMMANDS", "RunFailed", "UsageError", "build_parser", "main"]

# Subcommand modules under keras_runet.commands, in the order --help lists them.
COMMANDS = [
    "synth",
    "prepare",
    "train",
    "cv",
    "evaluate",
    "thresholds",
    "demo",
    "tune",
    "export",
    "predict",
]


def _command_modules():
    return [importlib.import_module(f"keras_runet.commands.{name}") for name in COMMANDS]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one `--help` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``runet`` parser.

    Args:
        commands: declare the options of these subcommands only (the others are listed
            with their one-line help, all that ``runet --help`` shows); None: all of them.
            :func:`main` passes the one on its command line, so that ``runet X`` runs no
            other command's ``add_arguments``.
    """
    parser = _Parser(
        prog="runet",
        description="RU-Net (Refining U-Net) for robust 2D echocardiography segmentation.",
    )
    from keras_runet.version import __version__

    parser.add_argument("--version", action="version", version=f"keras-runet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = None if commands is None else set(commands)
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        if wanted is None or mod.NAME in wanted:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The first word that is not an option names the subcommand (runet's own options,
    # --help and --version, take no value).
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser([command] if command in COMMANDS else [])
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
    sys.exit(main())
