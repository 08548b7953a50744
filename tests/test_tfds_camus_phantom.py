"""tfds_camus.phantom: a synthetic CAMUS that looks like apical echo and agrees with itself."""

import argparse
import hashlib
import math

import numpy as np
import pytest

from tfds_camus import folds, phantom, reader

SCALE = 0.25


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return phantom.write_synthetic_camus(
        out, num_patients=6, scale=SCALE, half_sequence_frames=(5, 7)
    )


def _tree_digest(path):
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_deterministic_by_seed_and_independent_of_count(tmp_path):
    kw = dict(layout="original", scale=0.1, half_sequence_frames=(3, 4))
    a = phantom.write_synthetic_camus(tmp_path / "a", patient_ids=[3], seed=1, **kw)
    b = phantom.write_synthetic_camus(tmp_path / "b", num_patients=3, seed=1, workers=2, **kw)
    c = phantom.write_synthetic_camus(tmp_path / "c", patient_ids=[3], seed=2, **kw)
    one = _tree_digest(a / "training/patient0003")
    assert one == _tree_digest(b / "training/patient0003")
    assert one != _tree_digest(c / "training/patient0003")


def test_sizes_and_spacings_are_camus_like_and_varied():
    rows, cols, row_mm, col_mm = [], [], [], []
    for i in range(1, 41):
        for g in phantom.patient_params(f"patient{i:04d}").views.values():
            rows.append(g.rows)
            cols.append(g.cols)
            row_mm.append(g.row_mm)
            col_mm.append(g.col_mm)
    assert 740 < np.mean(rows) < 820 and 520 < np.mean(cols) < 580
    assert np.std(rows) > 10 and np.std(cols) > 10
    assert 0.13 < np.mean(row_mm) < 0.19 and 0.25 < np.mean(col_mm) < 0.36
    assert np.std(row_mm) > 0.005 and np.std(col_mm) > 0.005
    assert np.all(np.array(col_mm) > 1.4 * np.array(row_mm))  # anisotropic, like CAMUS


def test_scale_keeps_the_anatomy_in_mm():
    full = phantom.patient_params("patient0007").views["2CH"]
    half = phantom.patient_params("patient0007", scale=0.5).views["2CH"]
    assert half.rows == round(full.rows / 2) or abs(half.rows - full.rows / 2) <= 1
    assert half.rows * half.row_mm == pytest.approx(full.rows * full.row_mm, rel=0.01)
    assert half.length == full.length


def test_qualities_follow_camus_proportions():
    qualities = [phantom.patient_params(f"patient{i:04d}").quality for i in range(1, 301)]
    counts = {q: qualities.count(q) / 300 for q in phantom.QUALITIES}
    assert counts["Good"] == pytest.approx(0.35, abs=0.08)
    assert counts["Medium"] == pytest.approx(0.46, abs=0.08)
    assert counts["Poor"] == pytest.approx(0.19, abs=0.07)


def _sector(shape, spacing, half_angle_deg=36.0):
    rows, cols = shape
    y = (np.arange(rows)[:, None] + 0.5) * spacing[0]
    x = (np.arange(cols)[None, :] + 0.5 - cols / 2) * spacing[1]
    return np.abs(np.arctan2(x, y)) < math.radians(half_angle_deg)


def test_images_look_like_apical_echo(root):
    for pid in reader.list_patients(root):
        for view in reader.VIEWS:
            ed = reader.load_instant(root, pid, view, "ED")
            es = reader.load_instant(root, pid, view, "ES")
            image, gt = ed["image"], ed["gt"]
            rows, cols = image.shape
            # Sector: nothing outside a 2 x 42 degree sector (top corners), signal inside.
            deep = (np.arange(rows) * ed["spacing"][0] > 40.0)[:, None]  # past the soft apex
            assert image[~_sector(gt.shape, ed["spacing"], 42.0) & deep].max() == 0
            assert image[: rows // 10, : cols // 10].max() == 0
            assert np.mean(image[gt == 2] > 0) > 0.75  # dropouts in poor images
            assert set(np.unique(gt)) == {0, 1, 2, 3}
            lv, myo, la = (image[gt == k].mean() for k in (1, 2, 3))
            tissue = image[(gt == 0) & _sector(gt.shape, ed["spacing"])].mean()
            assert lv < 0.8 * myo and la < 0.8 * myo, (pid, view, lv, myo)
            if ed["info"]["ImageQuality"] != "Poor":  # hazy cavities in poor images
                assert lv < tissue, (pid, view, lv, tissue)
            # LA below the LV, the LV apex towards the probe.
            r_lv = np.nonzero(gt == 1)[0]
            r_la = np.nonzero(gt == 3)[0]
            assert r_la.mean() > r_lv.mean() and r_lv.min() < r_la.min()
            # Smaller LV cavity at ES than at ED.
            assert (es["gt"] == 1).sum() < (ed["gt"] == 1).sum()


def test_poor_quality_has_lower_contrast(tmp_path):
    contrast = {}
    for quality in ("Good", "Poor"):
        out = phantom.write_synthetic_camus(
            tmp_path / quality,
            patient_ids=[5],
            scale=SCALE,
            quality=quality,
            half_sequence_frames=(3, 3),
        )
        d = reader.load_instant(out, "patient0005", "2CH", "ED")
        assert d["info"]["ImageQuality"] == quality
        lv, myo = d["image"][d["gt"] == 1].mean(), d["image"][d["gt"] == 2].mean()
        contrast[quality] = myo - lv
    assert contrast["Poor"] < 0.7 * contrast["Good"]


def _area_length_volume(mask, spacing):
    """LV volume (ml) by the single-plane area-length method, from a mask: independent of
    the phantom's own Simpson computation."""
    area = (mask == 1).sum() * spacing[0] * spacing[1]
    rows = np.nonzero((mask == 1).any(axis=1))[0]
    length = (rows.max() - rows.min() + 1) * spacing[0]
    return 8.0 * area**2 / (3.0 * math.pi * length) / 1000.0


def test_cfg_values_agree_with_the_masks(tmp_path):
    out = phantom.write_synthetic_camus(
        tmp_path, patient_ids=range(1, 9), layout="original", scale=0.5, half_sequence_frames=(3, 4)
    )
    for pid in reader.list_patients(out):
        vols = {}
        for instant in ("ED", "ES"):
            per_view = [
                _area_length_volume(d["gt"], d["spacing"])
                for d in (reader.load_instant(out, pid, v, instant) for v in reader.VIEWS)
            ]
            vols[instant] = np.mean(per_view)
        info = reader.read_info_cfg(out / "training" / pid / "Info_2CH.cfg")
        ef_masks = 100 * (vols["ED"] - vols["ES"]) / vols["ED"]
        assert ef_masks == pytest.approx(info["LVef"], abs=7), pid
        assert vols["ED"] == pytest.approx(info["LVedv"], rel=0.2), pid
        assert info["LVef"] == pytest.approx(
            100 * (info["LVedv"] - info["LVesv"]) / info["LVedv"], abs=0.11
        )


def test_half_sequences_carry_gt_on_every_frame_and_shrink(root):
    for pid in reader.list_patients(root)[:3]:
        for view in reader.VIEWS:
            seq = reader.load_half_sequence(root, pid, view)
            info = seq["info"]
            n = seq["images"].shape[0]
            assert info["ED"] == 1 and info["ES"] == n == info["NbFrame"]
            lv = (seq["gt"] == 1).sum(axis=(1, 2))
            assert np.all(lv > 0) and np.all(np.diff(lv) <= 0) and lv[-1] < lv[0]
            assert all(set(np.unique(f)) == {0, 1, 2, 3} for f in seq["gt"])


@pytest.mark.parametrize("testing_gt", [False, True])
def test_original_layout_testing_ids_restart_and_sequences(tmp_path, testing_gt):
    """As in the challenge release: testing/ holds people 451..500 as patient0001..0050."""
    out = phantom.write_synthetic_camus(
        tmp_path,
        patient_ids=[2, 452],
        layout="original",
        scale=0.1,
        half_sequence_frames=(4, 4),
        testing_gt=testing_gt,
    )
    assert sorted(p.name for p in (out / "training").iterdir()) == ["patient0002"]
    assert sorted(p.name for p in (out / "testing").iterdir()) == ["patient0002"]
    assert bool(list((out / "testing/patient0002").glob("*_gt.*"))) == testing_gt
    train = reader.load_instant(out, "patient0002", "2CH", "ED")
    test = reader.load_instant(out, "testing/patient0002", "2CH", "ED")
    assert train["image"].shape != test["image"].shape or not np.array_equal(
        train["image"], test["image"]
    )  # two different people under one id
    g = phantom.patient_params("patient0452", scale=0.1, half_sequence_frames=(4, 4))
    assert test["image"].shape == (g.views["2CH"].rows, g.views["2CH"].cols)
    files = reader.patient_files(out, "patient0002", "2CH")
    seq, _ = reader.read_image(files.sequence, ndim=3)
    info = reader.read_info_cfg(files.info)
    assert seq.shape[0] == info["NbFrame"] == 4 and (info["ED"], info["ES"]) == (1, 4)
    np.testing.assert_array_equal(seq[0], train["image"])


def test_original_layout_whole_cycle(tmp_path):
    out = phantom.write_synthetic_camus(
        tmp_path,
        patient_ids=[2],
        layout="original",
        scale=0.1,
        half_sequence_frames=(4, 4),
        original_sequence="cycle",
    )
    files = reader.patient_files(out, "patient0002", "2CH")
    seq, _ = reader.read_image(files.sequence, ndim=3)
    info = reader.read_info_cfg(files.info)
    assert seq.shape[0] == info["NbFrame"] > info["ES"] - info["ED"] + 1  # the whole cycle
    assert info["ES"] - info["ED"] + 1 == 4 and info["ED"] > 1
    ed = reader.load_instant(out, "patient0002", "2CH", "ED")
    np.testing.assert_array_equal(seq[info["ED"] - 1], ed["image"])
    assert ed["frame_index"] == 0


def test_es_to_ed_fraction_is_deterministic_and_about_right():
    ids = [f"patient{i:04d}" for i in range(1, 501)]
    views = phantom.es_to_ed_views(ids, 0.04, seed=0)
    assert views == phantom.es_to_ed_views(ids, 0.04, seed=0)
    assert all(v == {"4CH"} for v in views.values())
    assert 8 <= len(views) <= 35  # ~20 of 500, as the real release's 19
    assert phantom.es_to_ed_views(ids[:2], ["patient0001_2CH"]) == {"patient0001": {"2CH"}}
    with pytest.raises(ValueError, match="patient0001_4CH"):
        phantom.es_to_ed_views(ids, ["patient0001-4CH"])


def test_split_lists_are_written_and_partition_the_patients(root):
    lists = reader.read_split_lists(root)
    flat = [p for ids in lists.values() for p in ids]
    assert sorted(flat) == reader.list_patients(root)


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        phantom.main(["--help"])
    assert e.value.code == 0
    assert "camus-synth" in capsys.readouterr().out
    code = phantom.main(
        [
            str(tmp_path),
            "--patient-ids",
            "1,patient0042",
            "--layout",
            "original",
            "--scale",
            "0.1",
            "--frames",
            "3",
            "3",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert reader.list_patients(tmp_path) == ["patient0001", "patient0042"]
    assert phantom.main([str(tmp_path), "--scale", "9"]) == 2
    assert "scale" in capsys.readouterr().err


TINY = dict(scale=0.05, half_sequence_frames=(2, 2))


def test_per_group_spreads_the_patients_over_the_ten_fold_groups(tmp_path):
    root = phantom.write_synthetic_camus(tmp_path, 12, per_group=True, **TINY)
    ids = reader.list_patients(root)
    assert ids == sorted(phantom.patients_per_group(12))
    assert sorted({folds.group_of(pid) for pid in ids}) == list(range(1, 11))
    with pytest.raises(ValueError, match="per_group"):
        phantom.patients_per_group(501)
    with pytest.raises(ValueError, match="exclude"):
        phantom.write_synthetic_camus(tmp_path, 2, per_group=True, patient_ids=[1, 2], **TINY)


def test_reuse_keeps_a_tree_written_with_the_same_arguments(tmp_path):
    root = phantom.write_synthetic_camus(tmp_path, 2, reuse=True, **TINY)
    marker = root / phantom.COMPLETE_MARKER
    cfg = root / "CAMUS_public/database_nifti/patient0001/Info_2CH.cfg"
    before = (marker.stat().st_mtime_ns, cfg.stat().st_mtime_ns)
    assert phantom.write_synthetic_camus(tmp_path, 2, reuse=True, **TINY) == root
    assert (marker.stat().st_mtime_ns, cfg.stat().st_mtime_ns) == before
    phantom.write_synthetic_camus(tmp_path, 2, reuse=True, seed=1, **TINY)  # other arguments
    assert cfg.stat().st_mtime_ns != before[1]
    assert '"seed": 1' in marker.read_text()
    phantom.write_synthetic_camus(tmp_path, 2, seed=1, **TINY)  # reuse=False: rewritten
    assert cfg.stat().st_mtime_ns != before[1]


def test_runet_synth_and_camus_synth_parse_the_same_flags():
    from keras_runet.commands import synth

    argv = ["out", "-n", "30", "--layout", "original", "--per-group", "--seed", "3"]
    argv += ["--scale", "0.5", "--workers", "2", "--reuse", "--quality", "Poor"]
    camus_synth, runet_synth = argparse.ArgumentParser(), argparse.ArgumentParser()
    phantom.add_synth_arguments(camus_synth)
    synth.add_arguments(runet_synth)
    ours, theirs = runet_synth.parse_args(argv), camus_synth.parse_args(argv)
    assert vars(ours) == vars(theirs)
    assert (ours.patients, ours.release, ours.per_group) == (30, "original", True)
    assert camus_synth.parse_args(["out", "--release", "nifti"]).release == "nifti"
