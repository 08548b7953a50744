"""tfds_camus.layout: every way a real CAMUS download is laid out on disk (no TFDS here)."""

import shutil

import pytest

from tfds_camus import checks, phantom, reader


@pytest.fixture(scope="module")
def nifti_tree(tmp_path_factory):
    return phantom.write_synthetic_camus(
        tmp_path_factory.mktemp("nifti"), patient_ids=[1, 2], scale=0.1, half_sequence_frames=(3, 3)
    )


@pytest.fixture(scope="module")
def original_tree(tmp_path_factory):
    return phantom.write_synthetic_camus(
        tmp_path_factory.mktemp("original"),
        patient_ids=[1, 2, 451, 452],
        layout="original",
        scale=0.1,
        half_sequence_frames=(3, 3),
        testing_gt=True,
    )


def _keys(lay):
    return [p.key for p in lay.patients]


def test_testing_patients_are_keyed_apart_from_training(original_tree):
    lay = reader.detect_layout(original_tree)
    assert _keys(lay) == [
        "patient0001",
        "patient0002",
        "testing/patient0001",
        "testing/patient0002",
    ]
    assert not lay.problems  # same ids in training/ and testing/ are not duplicates
    assert lay.patient("patient0001").subset == "training"
    assert lay.patient("testing/patient0001").path == original_tree / "testing/patient0001"
    assert lay.patient("patient0001", "testing").path == original_tree / "testing/patient0001"


@pytest.mark.parametrize(
    "form", ["doubled_top", "split_beside", "inner_folder", "camus_public_zip"]
)
def test_layout_variants_of_the_2023_release(nifti_tree, tmp_path, form):
    manual = phantom.as_downloaded(nifti_tree, tmp_path / "manual", form, macos=True)
    if form == "camus_public_zip":
        with pytest.raises(reader.CamusFormatError, match="holds only archives.*CAMUS_public.zip"):
            reader.detect_layout(manual)
        return
    lay = reader.detect_layout(manual)
    assert lay.kind == "nifti" and _keys(lay) == ["patient0001", "patient0002"]
    if form != "inner_folder":  # an inner folder given alone has no split beside it
        assert lay.split_dir is not None
        assert set(reader.read_split_lists(lay)) == set(reader.SPLIT_NAMES)


def test_database_nifti_given_finds_its_split_one_level_up(nifti_tree):
    lay = reader.detect_layout(nifti_tree / "CAMUS_public" / "database_nifti")
    assert lay.split_dir == nifti_tree / "CAMUS_public" / "database_split"


def test_macos_debris_is_ignored(nifti_tree, tmp_path):
    manual = tmp_path / "m"
    shutil.copytree(nifti_tree, manual)
    phantom.add_macos_debris(manual)
    debris = manual / "__MACOSX" / "CAMUS_public" / "database_nifti" / "patient0003"
    debris.mkdir(parents=True)
    (debris / "._patient0003_2CH_ED.nii.gz").write_bytes(b"\0\5\26\7")
    (manual / "CAMUS_public/database_nifti/patient0001/._patient0001_2CH_ED.nii.gz").write_bytes(
        b"\0\5\26\7"
    )
    lay = reader.detect_layout(manual)
    assert _keys(lay) == ["patient0001", "patient0002"] and not lay.problems
    assert not checks.check_patients(lay).problems


def test_both_releases_is_an_error_naming_both(nifti_tree, original_tree, tmp_path):
    manual = tmp_path / "both"
    shutil.copytree(nifti_tree, manual)
    shutil.copytree(original_tree / "training", manual / "training")
    with pytest.raises(reader.CamusFormatError) as e:
        reader.detect_layout(manual)
    message = str(e.value)
    assert "both CAMUS releases" in message
    assert str(manual / "training") in message and "database_nifti" in message
    assert "release='nifti'" in message and "--release" in message
    assert reader.detect_layout(manual, release="original").kind == "original"
    assert _keys(reader.detect_layout(manual, release="nifti")) == ["patient0001", "patient0002"]


def test_a_patient_found_twice_is_a_problem_of_that_patient(nifti_tree, tmp_path):
    manual = tmp_path / "m"
    shutil.copytree(nifti_tree, manual)
    shutil.copytree(
        manual / "CAMUS_public/database_nifti/patient0002", manual / "copies" / "patient0002"
    )
    lay = reader.detect_layout(manual)
    assert [p.patient for p in lay.problems] == ["patient0002"]
    assert "found twice" in lay.problems[0].message
    report = checks.check_patients(lay)
    assert [p.key for p in report.usable] == ["patient0001"] and report.invalid == ["patient0002"]


def test_flat_files_of_one_patient_are_found_by_their_names(nifti_tree, tmp_path):
    flat = tmp_path / "ZIP.patient0001.zip"
    shutil.copytree(nifti_tree / "CAMUS_public/database_nifti/patient0001", flat)
    lay = reader.detect_layout(flat)
    assert _keys(lay) == ["patient0001"] and lay.patients[0].path == flat


def test_unnamed_folder_of_original_patients_is_training(original_tree, tmp_path):
    manual = tmp_path / "CAMUS_challenge"
    shutil.copytree(original_tree / "training", manual)
    assert _keys(reader.detect_layout(manual)) == ["patient0001", "patient0002"]
    renamed = tmp_path / "ZIP.testing.zip"  # TFDS's extraction of testing.zip
    shutil.copytree(original_tree / "testing", renamed / "testing")
    assert _keys(reader.detect_layout(renamed)) == ["testing/patient0001", "testing/patient0002"]


def test_checks_report_every_problem_with_its_file(nifti_tree, tmp_path):
    manual = tmp_path / "m"
    shutil.copytree(nifti_tree, manual)
    base = manual / "CAMUS_public/database_nifti"
    (base / "patient0001/patient0001_2CH_ES_gt.nii.gz").unlink()
    image = base / "patient0001/patient0001_4CH_ED.nii.gz"
    image.write_bytes(image.read_bytes()[:-40])  # truncated
    cfg = base / "patient0002/Info_2CH.cfg"
    cfg.write_text(cfg.read_text().replace("ES: 3", "ES: 9"))
    report = checks.check_patients(reader.detect_layout(manual))
    found = {(p.patient, p.path.name, p.message.split(":")[0]) for p in report.problems}
    assert found == {
        ("patient0001", "patient0001_2CH_ES_gt.nii.gz", "missing"),
        ("patient0001", "patient0001_4CH_ED.nii.gz", "truncated"),
        ("patient0002", "Info_2CH.cfg", "ES = 9 is outside the sequence's frames 1..3"),
    }
    assert report.usable == [] and report.invalid == ["patient0001", "patient0002"]
