"""Subcommands of the ``runet`` command line.

Each module here defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; ``keras_runet.cli`` lists them in
``COMMANDS``. The modules import only ``_common`` (the errors and the shared options), never
each other, and import TensorFlow, Keras and ``tfds_camus`` inside ``run``. A user mistake
raises :class:`keras_runet.commands._common.UsageError` (printed as one line, exit code 2;
also importable as ``keras_runet.cli.UsageError``); everything else propagates.
"""
