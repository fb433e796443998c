"""The chapter "Face templates and what they leak": its tables and figures on small synthetic inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from mifgsm_lib import paper
from mifgsm_lib.data import FaceDataset
from mifgsm_lib.faces.models import load_face_model
from mifgsm_lib.faces import dlib_resnet
from mifgsm_lib.figures import templates as figures
from mifgsm_lib.studies import templates as study
from mifgsm_lib.verification import rate_intervals, verify


def _dataset(identities: bool = True) -> FaceDataset:
    n = 6
    return FaceDataset(
        name="toy", root="/nonexistent", paths=[f"p{i}.jpg" for i in range(n)], image_ids=[f"p{i}" for i in range(n)],
        identity=[0, 0, 0, 1, 2, 2] if identities else np.arange(n),
        identity_names=["a", "b", "c"] if identities else [],
        gender=[0, 0, 0, 1, 1, -1], problems=["p5.jpg: in both lists; gender unknown (-1), kept"],
    )


def test_dataset_table_counts_and_female_share() -> None:
    row = study.dataset_table([_dataset()]).loc["toy"]
    assert (row["images"], row["male"], row["female"], row["unknown_gender"]) == (6, 3, 2, 1)
    assert row["female_share"] == pytest.approx(2 / 5)


def test_identity_counts_most_photographed_first() -> None:
    counts = study.identity_counts(_dataset())
    assert counts.index.tolist() == ["a", "c", "b"] and counts.tolist() == [3, 2, 1]
    with pytest.raises(ValueError, match="has no identities"):
        study.identity_counts(_dataset(identities=False))


def test_problems_table_splits_file_and_resolution() -> None:
    table = study.problems_table(_dataset())
    assert table.iloc[0].tolist() == ["p5.jpg", "in both lists; gender unknown (-1), kept"]


def test_fallback_table_fraction() -> None:
    table = study.fallback_table({"toy": np.array([True, False, False, False])})
    assert table.loc["toy", "fallback"] == 1 and table.loc["toy", "fraction"] == pytest.approx(0.25)


def test_alignment_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="one chip per image"):
        study.alignment_examples(_dataset(), np.zeros((2, 150, 150, 3), np.uint8), [0])
    with pytest.raises(ValueError, match="at least one dataset of alignment examples"):
        figures.plot_alignment({}, per_row=2)


def test_plot_alignment_draws_originals_above_chips() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    examples = [study.AlignmentExample("x_0001", image, (5, 5, 30, 30), fb, np.zeros((15, 15, 3), np.uint8))
                for fb in (False, True)]
    fig = figures.plot_alignment({"lfw": examples, "utkface: fallback cases": []}, per_row=3)
    assert len(fig.axes) == 6 and sum(bool(ax.images) for ax in fig.axes) == 4  # the third column is left blank
    patches = [p.get_edgecolor()[:3] for ax in fig.axes for p in ax.patches]
    assert patches == [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0)]
    assert [f.get_suptitle() for f in fig.subfigs] == ["lfw", "utkface: fallback cases"]
    assert "none" in [t.get_text() for t in fig.subfigs[1].texts]


@pytest.fixture(scope="module")
def dlib_model():
    return load_face_model("dlib", device="cpu")


def test_network_table_counts_every_parameter(dlib_model) -> None:
    table = study.network_table(dlib_model.network)
    assert table["parameters"].sum() == sum(p.numel() for p in dlib_model.network.parameters())
    assert table.iloc[-1]["output"] == "128"
    assert study.dlib_file_parameters() > table["parameters"].sum()  # the affine layers, folded in the port


def test_compare_with_dlib_on_noise_chips(dlib_model) -> None:
    chips = np.random.default_rng(0).integers(0, 256, size=(2, 150, 150, 3), dtype=np.uint8)
    table = study.compare_with_dlib(dlib_model, chips, ["a", "b"])
    assert table["max_abs_diff"].max() <= 1e-4
    assert table["cosine"].min() > 0.999999
    with pytest.raises(ValueError, match="one name per chip"):
        study.compare_with_dlib(dlib_model, chips, ["a"])
    with pytest.raises(ValueError, match="uint8 array"):
        dlib_resnet.dlib_descriptors(chips.astype(np.float32))


def test_verification_table_sits_beside_published_figures() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 4))
    left, right = np.arange(0, 40, 2), np.arange(1, 40, 2)
    same = np.arange(20) % 2 == 0
    z[right[same]] = z[left[same]] + 0.01 * rng.normal(size=(same.sum(), 4))
    report = verify(z, left, right, same, folds=5)
    distances = np.linalg.norm(z[left] - z[right], axis=1)
    intervals = rate_intervals(distances, same, n_boot=200)
    table = study.verification_table(report, "ours", intervals)
    assert table.loc["ours", "accuracy"] == report.accuracy_mean
    eer = intervals["eer"]
    assert eer.low <= report.eer <= eer.high
    assert table.loc["ours", "eer 95% interval"] == f"[{eer.low:.2%}, {eer.high:.2%}]"
    assert table.iloc[1]["accuracy"] == paper.DLIB_PUBLISHED_LFW_ACCURACY
    assert np.isnan(table.iloc[1]["eer"])
    assert len(figures.plot_verification({"ours": report}).axes) == 2


def test_clean_leakage_grouped_and_stratified_rows() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    z = rng.normal(size=(120, 5)) + 3.0 * y[:, None]
    identity = np.arange(120) // 2
    table = study.clean_leakage(z, y, identity, folds=3, seed=0, n_jobs=1)
    assert table.index.tolist() == ["grouped by identity", "stratified, as in the paper"]
    assert (table["mean"] > 0.9).all() and (table["images"] == 120).all()
    assert study.clean_leakage(z, y, None, folds=3, n_jobs=1).index.tolist() == ["stratified, as in the paper"]
