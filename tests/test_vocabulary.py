"""tfds_camus.vocabulary: the one table of names, and what is derived from it."""

from tfds_camus import vocabulary as v


def test_labels_are_one_table_with_three_spellings():
    assert [label.value for label in v.LABEL_TABLE] == list(range(v.NUM_LABELS))
    assert v.LABELS == ("background", "lv_cavity", "myocardium", "left_atrium")
    assert v.LABEL_METRIC_NAMES == ("background", "lv_endo", "lv_myo", "la")
    assert len(v.LABEL_DISPLAY_NAMES) == v.NUM_LABELS
    assert v.LABELS[v.BACKGROUND] == "background"


def test_structures_are_made_of_foreground_labels():
    assert v.STRUCTURES == {"LVendo": (1,), "LVepi": (1, 2), "LA": (3,)}
    assert set(v.STRUCTURE_DISPLAY_NAMES) == set(v.STRUCTURES)
    assert set(v.LV_STRUCTURES) <= set(v.STRUCTURES)
    for labels in v.STRUCTURES.values():
        assert all(0 < label < v.NUM_LABELS for label in labels)


def test_models_views_instants_qualities_releases():
    assert v.MODELS == ("unet1", "shg", "runet")
    assert [v.MODEL_DISPLAY_NAMES[m] for m in v.MODELS] == ["U-Net 1", "SHG", "RU-Net"]
    assert v.VIEWS == (v.VIEW_2CH, v.VIEW_4CH) == ("2CH", "4CH")
    assert v.INSTANTS == (v.ED, v.ES) == ("ED", "ES")
    assert v.FRAME_INSTANTS == (*v.INSTANTS, v.OTHER_INSTANT)
    assert (v.GOOD, v.MEDIUM, v.POOR) == v.QUALITIES == ("Good", "Medium", "Poor")
    assert v.RELEASES == v.LAYOUTS == (v.ORIGINAL, v.NIFTI)
    assert set(v.EXTENSIONS) == set(v.RELEASES)


def test_the_builder_and_the_reader_take_their_names_from_here():
    from tfds_camus import reader
    from tfds_camus.camus import camus_dataset_builder as builder

    assert tuple(builder.VIEWS) == v.VIEWS and reader.VIEWS is v.VIEWS
    assert tuple(builder.INSTANTS) == v.FRAME_INSTANTS
    assert builder.QUALITIES == [*v.QUALITIES, v.UNKNOWN]
    assert builder.SEXES == [*v.SEXES, v.UNKNOWN]


def test_the_names_import_light_and_the_builder_registers_in_either_import_order():
    import subprocess
    import sys

    light = (
        "import sys, tfds_camus.vocabulary, tfds_camus.atomic, tfds_camus.folds\n"
        "heavy = [m for m in ('tensorflow_datasets', 'SimpleITK', 'scipy', 'tensorflow')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import tensorflow_datasets as tfds\n"  # tfds_camus first, then TFDS
        "assert 'camus' in tfds.list_builders(with_community_datasets=False)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
