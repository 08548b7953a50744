"""`runet prepare`: build the TFDS camus dataset from a CAMUS folder (once)."""

from __future__ import annotations

from pathlib import Path

NAME = "prepare"
HELP = "build the TFDS camus dataset from a CAMUS download (or a synthetic CAMUS)"


def add_arguments(p):
    p.add_argument(
        "--manual-dir",
        required=True,
        help="the folder holding the CAMUS download: the zip file(s) as downloaded "
        "(CAMUS_public.zip, database_nifti.zip, patientXXXX.zip, training.zip / testing.zip) "
        "or the extracted folders, either release",
    )
    p.add_argument("--data-dir", required=True, help="TFDS data dir to write")
    p.add_argument(
        "--config",
        default="256",
        help="builder config: 256 (default), native, half_sequence_256",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="build without the patients whose files have problems (listed at the end and "
        "kept in the dataset's metadata) instead of failing before writing anything",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild the dataset even if one is prepared in --data-dir (needed when it was "
        "built from other files)",
    )
    p.add_argument(
        "--release",
        choices=("nifti", "original"),
        help="which release to use when the manual dir holds both",
    )


def run(args) -> int:
    from keras_runet.commands._common import existing_dir, prepare_dataset, setup_logging

    setup_logging()
    manual = existing_dir(args.manual_dir, "--manual-dir")
    builder = prepare_dataset(
        manual,
        Path(args.data_dir).expanduser(),
        args.config,
        force=args.force,
        skip_invalid_patients=args.skip_invalid,
        release=args.release,
    )
    print(f"{builder.info.full_name} in {builder.data_dir}")
    for line in summary_lines(builder):
        print(line)
    return 0


def summary_lines(builder) -> list[str]:
    """What a user should know about a prepared camus dataset: splits, and what was left out
    or changed on the way (skipped and unlabelled patients, views reordered, warnings)."""
    meta = dict(builder.info.metadata or {})
    per_split = meta.get("patients_per_split", {})
    lines = [f"release: {meta.get('release', 'unknown')}"]
    for name, split in sorted(builder.info.splits.items()):
        patients = f", {per_split[name]} patients" if name in per_split else ""
        lines.append(f"  {name}: {split.num_examples} examples{patients}")
    skipped = meta.get("skipped_patients") or []
    if skipped:
        lines.append(f"skipped {len(skipped)} invalid patient(s):")
        for s in skipped:
            lines += [f"  {s['patient']}: {p}" for p in s["problems"]]
    unlabelled = meta.get("unlabelled_testing_patients") or []
    if unlabelled:
        lines.append(
            f"{len(unlabelled)} patients of testing/ have no masks (the challenge's test set): "
            "not prepared"
        )
    reordered = meta.get("es_to_ed_views") or []
    if reordered:
        shown = ", ".join(reordered[:8]) + (", ..." if len(reordered) > 8 else "")
        lines.append(f"{len(reordered)} view(s) stored ES -> ED, put in ED -> ES order: {shown}")
    warnings = meta.get("warnings") or []
    if warnings:
        lines.append(f"{len(warnings)} warning(s):")
        lines += [f"  {w}" for w in warnings[:20]]
        if len(warnings) > 20:
            lines.append(f"  ... and {len(warnings) - 20} more (builder.info.metadata['warnings'])")
    return lines
