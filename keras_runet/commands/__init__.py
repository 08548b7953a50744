"""Subcommands of the ``runet`` command line.

Each module here defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. ``keras_runet.cli`` lists them in
``COMMANDS``. A user mistake raises :class:`keras_runet.cli.UsageError` (printed as one line,
exit code 2); everything else propagates.
"""
