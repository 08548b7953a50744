"""`runet prepare`: build the TFDS camus dataset from a CAMUS folder (once)."""

from __future__ import annotations

from pathlib import Path

NAME = "prepare"
HELP = "build the TFDS camus dataset from a CAMUS download (or a synthetic CAMUS)"


def add_arguments(p):
    p.add_argument("--manual-dir", required=True, help="the CAMUS folder (either release)")
    p.add_argument("--data-dir", required=True, help="TFDS data dir to write")
    p.add_argument(
        "--config",
        default="256",
        help="builder config: 256 (default), native, half_sequence_256",
    )


def run(args) -> int:
    from keras_runet.commands._common import existing_dir, prepare_dataset, setup_logging

    setup_logging()
    manual = existing_dir(args.manual_dir, "--manual-dir")
    builder = prepare_dataset(manual, Path(args.data_dir).expanduser(), args.config)
    print(f"{builder.info.full_name} in {builder.data_dir}")
    for name, split in sorted(builder.info.splits.items()):
        print(f"  {name}: {split.num_examples} examples")
    return 0
