"""The camus builder on CAMUS as users download it: archives, ES -> ED views, the original
release's testing/ patients, and bad patients reported all at once (issue 12)."""

import hashlib
import logging
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import tensorflow_datasets as tfds

from tfds_camus import phantom, reader
from tfds_camus.camus import camus_dataset_builder

INSTANTS = camus_dataset_builder.INSTANTS
KW = dict(scale=0.1, half_sequence_frames=(3, 4))


def _prepare(manual_dir, data_dir, config="256", **kwargs):
    builder = tfds.builder(f"camus/{config}", data_dir=str(data_dir), **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def _contents(builder):
    """{split: {(patient, view, instant, frame): digest of image, mask and native mask}}."""
    out = {}
    for split in builder.info.splits:
        rows = {}
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            key = (
                ex["patient_id"].decode(),
                reader.VIEWS[ex["view"]],
                INSTANTS[ex["instant"]],
                int(ex["frame_index"]),
            )
            assert key not in rows, key
            digest = hashlib.sha256()
            for name in ("image", "mask", "native_mask"):
                digest.update(ex[name].tobytes())
            rows[key] = digest.hexdigest()
        out[split] = rows
    return out


@pytest.fixture(scope="module")
def nifti_tree(tmp_path_factory):
    return phantom.write_synthetic_camus(
        tmp_path_factory.mktemp("nifti"),
        patient_ids=[1, 42, 455],
        es_to_ed=["patient0042_4CH"],
        **KW,
    )


@pytest.fixture(scope="module")
def nifti_reference(nifti_tree, tmp_path_factory):
    return _contents(_prepare(nifti_tree, tmp_path_factory.mktemp("ref")))


# --- archives as downloaded -------------------------------------------------------------------


@pytest.mark.parametrize(
    "form, options",
    [
        ("camus_public_zip", {}),
        ("camus_public_zip", {"macos": True}),
        ("database_nifti_zip", {"split": "folder"}),
        ("database_nifti_zip", {"split": "zip"}),
        ("per_patient_zips", {"split": "zip"}),
        ("per_patient_zips", {"flat": True}),
        ("doubled_top", {"macos": True}),
        ("split_beside", {}),
    ],
)
def test_each_download_form_prepares_the_same_examples(
    nifti_tree, nifti_reference, tmp_path, form, options
):
    manual = phantom.as_downloaded(nifti_tree, tmp_path / "manual", form, **options)
    builder = _prepare(manual, tmp_path / "data")
    assert _contents(builder) == nifti_reference
    source = builder.info.metadata["source"]
    assert source["manual_dir"] == str(manual)
    if form.endswith(("zip", "zips")):
        assert source["archives"] and all(a["size"] > 0 for a in source["archives"])


def test_database_nifti_zip_without_split_has_the_folds_only(nifti_tree, nifti_reference, tmp_path):
    manual = phantom.as_downloaded(nifti_tree, tmp_path / "m", "database_nifti_zip", split=None)
    contents = _contents(_prepare(manual, tmp_path / "data"))
    assert set(contents) == {"group1", "group2", "group10"}
    assert all(contents[s] == nifti_reference[s] for s in contents)


def test_original_zips_prepare_like_the_folders(tmp_path):
    tree = phantom.write_synthetic_camus(
        tmp_path / "tree", patient_ids=[1, 42, 451], layout="original", testing_gt=True, **KW
    )
    reference = _contents(_prepare(tree, tmp_path / "d1"))
    manual = phantom.as_downloaded(tree, tmp_path / "m", "original_zips", macos=True)
    assert sorted(p.name for p in manual.iterdir()) == ["testing.zip", "training.zip"]
    assert _contents(_prepare(manual, tmp_path / "d2")) == reference
    assert set(reference) == {"group1", "group2", "challenge_testing"}


def test_zip_beside_its_extracted_folder_is_not_extracted_again(nifti_tree, tmp_path, caplog):
    manual = tmp_path / "m"
    shutil.copytree(nifti_tree, manual)
    phantom.zip_folder(manual / "CAMUS_public", manual / "CAMUS_public.zip")
    with caplog.at_level(logging.INFO, logger="tfds_camus"):
        builder = _prepare(manual, tmp_path / "data")
    assert builder.info.metadata["source"]["archives"] == []
    assert builder.info.metadata["source"]["archives_passed_over"] == ["CAMUS_public.zip"]
    assert "not extracted, the folder CAMUS_public/ beside it is used" in caplog.text


def test_a_changed_zip_is_extracted_again(tmp_path):
    one = phantom.write_synthetic_camus(tmp_path / "a", patient_ids=[1], **KW)
    two = phantom.write_synthetic_camus(tmp_path / "b", patient_ids=[1, 2], **KW)
    manual = tmp_path / "m"
    phantom.as_downloaded(one, manual, "camus_public_zip")
    data = tmp_path / "data"
    assert _prepare(manual, data).info.splits["group1"].num_examples == 4
    zip_path = manual / "CAMUS_public.zip"
    zip_path.unlink()
    phantom.as_downloaded(two, manual, "camus_public_zip")
    os.utime(zip_path, ns=(1, 1))  # a different download: other size and time
    shutil.rmtree(data / "camus")  # keep downloads/extracted: the stale extraction is there
    assert _prepare(manual, data).info.splits["group1"].num_examples == 8


# --- the original release's testing/ ------------------------------------------------------------


@pytest.mark.parametrize("testing_gt", [False, True])
def test_testing_patients_are_never_in_the_folds(tmp_path, caplog, testing_gt):
    # training/ patient0001..0003; testing/ patient0001..0002 (people 451, 452): the same ids
    tree = phantom.write_synthetic_camus(
        tmp_path / "tree",
        patient_ids=[1, 2, 3, 451, 452],
        layout="original",
        testing_gt=testing_gt,
        **KW,
    )
    with caplog.at_level(logging.INFO, logger="tfds_camus"):
        builder = _prepare(tree, tmp_path / "data")
    assert "two folders" not in caplog.text
    contents = _contents(builder)
    folds = {k[0] for name, rows in contents.items() if name.startswith("group") for k in rows}
    assert folds == {"patient0001", "patient0002", "patient0003"}
    assert builder.info.splits["group1"].num_examples + sum(
        builder.info.splits[s].num_examples for s in builder.info.splits if s != "group1"
    ) == 4 * (3 + 2 * testing_gt)  # every patient prepared once
    if testing_gt:
        testing = {k[0] for k in contents["challenge_testing"]}
        assert testing == {"testing/patient0001", "testing/patient0002"}
        # the testing person is not the training one of the same id
        d = reader.load_instant(tree, "testing/patient0001", "2CH", "ED")
        ex = next(
            e
            for e in tfds.as_numpy(builder.as_dataset(split="challenge_testing"))
            if e["patient_id"] == b"testing/patient0001" and e["view"] == 0 and e["instant"] == 0
        )
        np.testing.assert_array_equal(ex["native_mask"][..., 0], d["gt"])
        assert builder.info.metadata["patients_per_split"]["challenge_testing"] == 2
    else:
        assert "challenge_testing" not in builder.info.splits
        assert "2 patients of testing/ have no ground truth" in caplog.text
        assert builder.info.metadata["unlabelled_testing_patients"] == [
            "testing/patient0001",
            "testing/patient0002",
        ]


def test_testing_folder_alone_lands_in_no_fold(tmp_path):
    tree = phantom.write_synthetic_camus(
        tmp_path / "tree", patient_ids=[451, 460], layout="original", testing_gt=True, **KW
    )
    builder = _prepare(tree / "testing", tmp_path / "data")
    assert set(builder.info.splits) == {"challenge_testing"}
    assert builder.info.splits["challenge_testing"].num_examples == 8


# --- views stored ES -> ED ----------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["nifti", "original"])
def test_es_to_ed_views_are_put_back_in_order(tmp_path, layout):
    tree = phantom.write_synthetic_camus(
        tmp_path / "tree",
        patient_ids=[1, 2],
        layout=layout,
        es_to_ed=["patient0001_4CH", "patient0002_2CH", "patient0002_4CH"],
        **KW,
    )
    builder = _prepare(tree, tmp_path / "data")
    assert builder.info.metadata["es_to_ed_views"] == [
        "patient0001 4CH",
        "patient0002 2CH",
        "patient0002 4CH",
    ]
    for ex in tfds.as_numpy(builder.as_dataset(split="group1")):
        pid, view = ex["patient_id"].decode(), reader.VIEWS[ex["view"]]
        instant = INSTANTS[ex["instant"]]
        files = reader.patient_files(tree, pid, view)
        n = sitk.ReadImage(str(files.sequence)).GetSize()[2]
        assert ex["es_to_ed"] == (f"{pid}_{view}" != "patient0001_2CH")
        assert ex["frame_index"] == (0 if instant == "ED" else n - 1)
        np.testing.assert_array_equal(
            ex["native_mask"][..., 0], reader.load_instant(tree, pid, view, instant)["gt"]
        )


def test_es_to_ed_half_sequences_run_from_ed_with_their_masks(tmp_path):
    tree = phantom.write_synthetic_camus(
        tmp_path / "tree", patient_ids=[1], es_to_ed=["patient0001_4CH"], **KW
    )
    builder = _prepare(tree, tmp_path / "data", config="half_sequence_256")
    frames = sorted(
        (ex for ex in tfds.as_numpy(builder.as_dataset(split="group1")) if ex["view"] == 1),
        key=lambda ex: ex["frame_index"],
    )
    files = reader.patient_files(tree, "patient0001", "4CH")
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(files.sequence_gt)))
    assert [ex["frame_index"] for ex in frames] == list(range(len(stored)))
    assert [INSTANTS[ex["instant"]] for ex in frames][:: len(frames) - 1] == ["ED", "ES"]
    assert all(ex["es_to_ed"] for ex in frames)
    for ex, gt in zip(frames, stored[::-1], strict=True):  # ED first: the file reversed
        np.testing.assert_array_equal(ex["native_mask"][..., 0], gt)
    ed = reader.load_instant(tree, "patient0001", "4CH", "ED")
    np.testing.assert_array_equal(frames[0]["native_mask"][..., 0], ed["gt"])


# --- bad patients: all reported before writing, or skipped and listed ------------------------------


def _break_two_of_four(root):
    base = root / "CAMUS_public/database_nifti"
    bad = base / "patient0002/patient0002_2CH_ES.nii.gz"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    cfg = base / "patient0004/Info_4CH.cfg"
    cfg.write_text(cfg.read_text().replace("ES: ", "ES: 4").replace("ED: ", "ED: x"))
    nb = base / "patient0003/Info_2CH.cfg"  # only a warning: NbFrame repeats the file
    nb.write_text(nb.read_text().replace("NbFrame: ", "NbFrame: 9"))
    return bad, cfg


def test_bad_patients_fail_before_writing_with_one_message(tmp_path):
    root = phantom.write_synthetic_camus(tmp_path / "src", patient_ids=[1, 2, 3, 4], **KW)
    bad, cfg = _break_two_of_four(root)
    data = tmp_path / "data"
    with pytest.raises(reader.InvalidPatientsError) as e:
        _prepare(root, data)
    message = str(e.value)
    assert f"{bad}: truncated" in message and f"{cfg}: ED must be a frame number" in message
    assert "2 patient(s) cannot be used (patient0002, patient0004)" in message
    assert "skip_invalid_patients=True" in message and "--skip-invalid" in message
    assert {p.patient for p in e.value.problems} == {"patient0002", "patient0004"}
    written = [p for p in data.rglob("*") if p.is_file() and ".config" not in p.parts]
    assert not written  # nothing but TFDS's own note of the default config
    assert not list(data.rglob("incomplete*"))


def test_skip_invalid_patients_builds_the_rest_and_lists_them(tmp_path, caplog):
    root = phantom.write_synthetic_camus(tmp_path / "src", patient_ids=[1, 2, 3, 4], **KW)
    _break_two_of_four(root)
    with caplog.at_level(logging.WARNING, logger="tfds_camus"):
        builder = _prepare(root, tmp_path / "data", skip_invalid_patients=True)
    assert {k[0] for k in _contents(builder)["group1"]} == {"patient0001", "patient0003"}
    skipped = builder.info.metadata["skipped_patients"]
    assert [s["patient"] for s in skipped] == ["patient0002", "patient0004"]
    assert "truncated" in skipped[0]["problems"][0]
    assert builder.info.metadata["patients_per_split"]["group1"] == 2
    assert any("NbFrame 9" in w for w in builder.info.metadata["warnings"])
    assert caplog.text.count("NbFrame 9") == 1  # said once, not once per example
    reloaded = tfds.builder("camus", data_dir=str(tmp_path / "data"))
    assert reloaded.info.metadata["skipped_patients"] == skipped


def test_bad_pixels_found_while_writing_skip_the_whole_patient(tmp_path):
    root = phantom.write_synthetic_camus(tmp_path / "src", patient_ids=[1, 2], **KW)
    gt = root / "CAMUS_public/database_nifti/patient0002/patient0002_4CH_ES_gt.nii.gz"
    image = sitk.ReadImage(str(gt))
    array = sitk.GetArrayFromImage(image)
    array[0, 0] = 9  # a label no header check can see
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(gt), True)
    with pytest.raises(
        reader.InvalidPatientsError, match=r"patient0002_4CH_ES_gt.nii.gz: mask labels"
    ):
        _prepare(root, tmp_path / "d1")
    builder = _prepare(root, tmp_path / "d2", skip_invalid_patients=True)
    assert {k[0] for k in _contents(builder)["group1"]} == {"patient0001"}  # none of 0002's views
    assert [s["patient"] for s in builder.info.metadata["skipped_patients"]] == ["patient0002"]
    assert builder.info.metadata["patients_per_split"]["group1"] == 1


def test_tfds_load_with_the_manual_dir_and_the_release_split(nifti_tree, tmp_path):
    import tfds_camus

    manual = phantom.as_downloaded(nifti_tree, tmp_path / "zips", "camus_public_zip")
    ds = tfds.load(
        "camus",
        split="train",
        data_dir=str(tmp_path / "data"),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=str(manual))
        },
    )
    assert {ex["patient_id"] for ex in tfds.as_numpy(ds)} == {b"patient0001", b"patient0042"}
    # the download behind a prepared dataset, zipped or not, reads back patient by patient
    builder = tfds.builder("camus", data_dir=str(tmp_path / "data"))
    camus = tfds_camus.source_layout(builder)
    d = reader.load_instant(camus, "patient0042", "4CH", "ES")
    np.testing.assert_array_equal(
        d["gt"], reader.load_instant(nifti_tree, "patient0042", "4CH", "ES")["gt"]
    )


def test_a_broken_sequence_costs_the_half_sequence_config_only(tmp_path):
    root = phantom.write_synthetic_camus(tmp_path / "src", patient_ids=[1, 2], **KW)
    seq = root / "CAMUS_public/database_nifti/patient0002/patient0002_2CH_half_sequence.nii.gz"
    seq.write_bytes(seq.read_bytes()[:-100])
    builder = _prepare(root, tmp_path / "d256")  # ED / ES images: patient0002 is kept
    assert builder.info.metadata["patients_per_split"]["group1"] == 2
    assert any(
        "half_sequence.nii.gz: truncated" in w and "not checked" in w
        for w in builder.info.metadata["warnings"]
    )
    with pytest.raises(reader.InvalidPatientsError, match="patient0002_2CH_half_sequence.nii.gz"):
        _prepare(root, tmp_path / "dseq", config="half_sequence_256")
