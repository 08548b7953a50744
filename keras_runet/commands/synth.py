"""`runet synth`: write a synthetic CAMUS (either release layout).

The flags are ``camus-synth``'s, declared once in :mod:`tfds_camus.phantom.cli`. No
TensorFlow is imported.
"""

from __future__ import annotations

NAME = "synth"
HELP = "write a synthetic CAMUS in the layout of either public release"


def add_arguments(p):
    from tfds_camus.phantom.cli import add_synth_arguments

    add_synth_arguments(p)


def run(args) -> int:
    from keras_runet.commands._common import UsageError, setup_logging
    from tfds_camus.phantom.cli import synth_from_args

    setup_logging(args.verbose)
    try:
        root = synth_from_args(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(root)
    return 0
