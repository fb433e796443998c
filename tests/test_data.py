"""Datasets, pairs, the balanced subset and fetching: fixtures in the published layouts, the real
mirror (``$MIFGSM_MIRROR``, default ``../shared/data``) and a loopback HTTP server for the download path."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mifgsm_lib import data
from mifgsm_lib.data import store
from mifgsm_lib.config import MIRROR_ENV

MIRROR = Path(os.environ.get(MIRROR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(autouse=True)
def _no_mirror_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaders fall back to ``$MIFGSM_MIRROR``; fixture tests must not see the real mirror through it."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)


@pytest.fixture
def mirror() -> Path:
    if not (MIRROR / "lfw" / "pairs.txt").is_file():
        pytest.skip(f"no data mirror at {MIRROR} (set {MIRROR_ENV})")
    return MIRROR


def image(path: Path, size: tuple[int, int] = (16, 16), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 90, 60)).save(path, format=fmt)
    return path


def make_lfw(root: Path, people: dict[str, int], male: list[str], female: list[str], images: str = "lfw",
             size: tuple[int, int] = (16, 16)) -> Path:
    """An LFW folder: <root>/lfw/<images>/<Name>/<Name>_NNNN.jpg and CRLF gender lists."""
    lfw = root / "lfw"
    for person, n in people.items():
        for k in range(1, n + 1):
            image(lfw / images / person / f"{person}_{k:04d}.jpg", size)
    (lfw / "male_names.txt").write_bytes("".join(f"{m}\r\n" for m in male).encode())
    (lfw / "female_names.txt").write_bytes("".join(f"{f}\r\n" for f in female).encode())
    (lfw / "pairs.txt").write_text("10\t300\n")
    return lfw


# --------------------------------------------------------------------------------------------- LFW

def test_lfw_mirror_counts_problems_and_pairs(mirror: Path) -> None:
    ds = data.load_dataset("lfw", mirror)
    assert ds.summary() == {"dataset": "lfw", "root": str(mirror / "lfw"), "images": 7701, "people": 4281,
                            "male": 5766, "female": 1932, "unknown_gender": 3, "problems": 6}
    assert ds.image_ids[0] == "AJ_Lamas_0001" and ds.paths[0] == "lfw/AJ_Lamas/AJ_Lamas_0001.jpg"
    unknown = set(ds.image_ids[ds.gender == data.UNKNOWN])
    assert unknown == {"Elizabeth_Hill_0001", "Tatiana_Shchegoleva_0001", "Tara_Kirk_0001"}
    text = "\n".join(ds.problems)
    assert "Elizabeth_Hill_0001.jpg: in both lists" in text and "Tara_Kirk_0001.jpg: in neither list" in text
    assert "Yasser_Arafat_0005.jpg: in neither list; Yasser_Arafat's file names in one list only: 7 male, " \
           "0 female; labelled male" in text
    pairs = data.read_pairs(mirror / "lfw" / "pairs.txt", ds)
    assert len(pairs) == 6000 and pairs.n_folds == 10 and pairs.same.sum() == 3000
    assert all(((pairs.fold == f) & pairs.same).sum() == 300 == ((pairs.fold == f) & ~pairs.same).sum()
               for f in range(10))
    assert (ds.identity[pairs.left] == ds.identity[pairs.right]).tolist() == pairs.same.tolist()
    first = pairs.left[0], pairs.right[0]  # pairs.txt line 2: "Abel_Pacheco 1 4"
    assert ds.image_ids[list(first)].tolist() == ["Abel_Pacheco_0001", "Abel_Pacheco_0004"]


def test_info_on_mirror_is_json_ready(mirror: Path) -> None:
    import json

    report = json.loads(json.dumps(data.info("lfw", mirror / "lfw")))
    assert (report["images"], report["people"], report["pairs"], report["image_size"]) == (7701, 4281, 6000, [150, 150])
    assert len(report["problems"]) == 6
    utk = data.info("utkface", mirror)
    assert (utk["images"], utk["people"], utk["pairs"], utk["male"], utk["female"]) == (9778, None, None, 4372, 5406)
    assert utk["attributes"] == ["age", "race"] and len(utk["problems"]) == 2
    assert all("malformed UTKFace name" in p for p in utk["problems"])


def test_lfw_gender_rule_on_conflicts_and_gaps(tmp_path: Path) -> None:
    people = {"Ann_Lee": 3, "Both_Lists": 1, "Gap_Person": 2, "Not_Listed": 1, "Tie_Person": 2, "Bob_Ray": 1}
    male = ["Ann_Lee_0001.jpg", "Ann_Lee_0002.jpg", "Both_Lists_0001.jpg", "Gap_Person_0001.jpg",
            "Tie_Person_0001.jpg", "Bob_Ray_0001.jpg", "Gap_Person_0009.jpg"]
    female = ["Ann_Lee_0003.jpg", "Both_Lists_0001.jpg", "Tie_Person_0002.jpg", "not a file name"]
    make_lfw(tmp_path, people, male, female, size=(250, 250))
    ds = data.load_dataset("lfw", tmp_path)
    gender = dict(zip(ds.image_ids.tolist(), ds.gender.tolist()))
    assert [gender[f"Ann_Lee_000{k}"] for k in (1, 2, 3)] == [0, 0, 0]  # majority of the person's names
    assert gender["Both_Lists_0001"] == gender["Not_Listed_0001"] == -1
    assert gender["Gap_Person_0002"] == 0  # a gap, labelled by the person's other listed names
    assert gender["Tie_Person_0001"] == gender["Tie_Person_0002"] == -1
    text = "\n".join(ds.problems)
    assert "Ann_Lee_0003.jpg: listed as female; Ann_Lee's file names in one list only: 2 male, 1 female; " \
           "labelled male" in text
    assert "Both_Lists_0001.jpg: in both lists" in text and "Gap_Person_0002.jpg: in neither list" in text
    assert "female_names.txt: line 'not a file name' is not an LFW file name" in text
    assert len(ds.problems) == 7 and ds.summary()["people"] == 6
    with pytest.raises(ValueError, match=r"lfw: 4 images have no gender under the documented rule"):
        data.load_dataset("lfw", tmp_path, unknown_gender="error")
    with pytest.raises(ValueError, match=r"unknown_gender='drop': expected 'keep' or 'error'"):
        data.load_dataset("lfw", tmp_path, unknown_gender="drop")
    assert data.info("lfw", tmp_path)["image_size"] == [250, 250]


def test_lfw_subset_gets_the_labels_of_the_full_lists(tmp_path: Path) -> None:
    make_lfw(tmp_path, {"Yasser_Arafat": 1}, [f"Yasser_Arafat_000{k}.jpg" for k in (2, 3, 4)], [])
    (tmp_path / "lfw" / "lfw" / "Yasser_Arafat" / "Yasser_Arafat_0001.jpg").rename(
        tmp_path / "lfw" / "lfw" / "Yasser_Arafat" / "Yasser_Arafat_0005.jpg")
    ds = data.load_dataset("lfw", tmp_path / "lfw")
    assert ds.gender.tolist() == [0] and "3 male, 0 female; labelled male" in ds.problems[0]


def test_lfw_layouts_and_bad_folders(tmp_path: Path) -> None:
    lfw = make_lfw(tmp_path, {"Ann_Lee": 2}, ["Ann_Lee_0001.jpg", "Ann_Lee_0002.jpg"], [], images="lfw_funneled")
    image(lfw / "lfw_funneled" / "stray.jpg")
    image(lfw / "lfw_funneled" / "Ann_Lee" / "Bob_Ray_0001.jpg")
    ds = data.load_dataset("lfw", tmp_path)
    assert len(ds) == 2 and ds.paths[0] == "lfw_funneled/Ann_Lee/Ann_Lee_0001.jpg"
    assert ds.problems == ["lfw_funneled/Ann_Lee/Bob_Ray_0001.jpg: not named Ann_Lee_NNNN.jpg; skipped",
                           "lfw_funneled/stray.jpg: not in a <Name>/ folder; skipped"]
    with pytest.raises(FileNotFoundError, match=r"lfw: no image folder lfw-deepfunneled in"):
        data.load_dataset("lfw", tmp_path, images="lfw-deepfunneled")
    (lfw / "lfw-deepfunneled").mkdir()
    with pytest.raises(FileNotFoundError, match=r"lfw: no images found in .*lfw-deepfunneled"):
        data.load_dataset("lfw", tmp_path, images="lfw-deepfunneled")
    (lfw / "male_names.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"male_names.txt"):
        data.load_dataset("lfw", tmp_path)


def write_pairs(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_read_pairs_folds_and_errors(tmp_path: Path) -> None:
    make_lfw(tmp_path, {"Ann_Lee": 3, "Bob_Ray": 2}, ["Ann_Lee_0001.jpg", "Bob_Ray_0001.jpg"], [])
    ds = data.load_dataset("lfw", tmp_path)
    good = ["Ann_Lee\t1\t3", "Ann_Lee\t3\tBob_Ray\t2", "Ann_Lee 1 2", "Bob_Ray 1 Ann_Lee 2"]
    pairs = data.read_pairs(write_pairs(tmp_path / "p.txt", "2\t1", good), ds)
    assert pairs.same.tolist() == [True, False, True, False] and pairs.fold.tolist() == [0, 0, 1, 1]
    assert ds.image_ids[pairs.left].tolist() == ["Ann_Lee_0001", "Ann_Lee_0003", "Ann_Lee_0001", "Bob_Ray_0001"]
    one_fold = data.read_pairs(write_pairs(tmp_path / "dev.txt", "1", good[:2]), ds)
    assert one_fold.n_folds == 1 and len(one_fold) == 2
    with pytest.raises(ValueError, match=r"p.txt line 3: image Ann_Lee_0009 is not in the dataset"):
        data.read_pairs(write_pairs(tmp_path / "p.txt", "1\t1", ["Ann_Lee 1 2", "Ann_Lee 9 Bob_Ray 1"]), ds)
    with pytest.raises(ValueError, match=r"first line 'ten folds': expected '<folds>"):
        data.read_pairs(write_pairs(tmp_path / "p.txt", "ten folds", good), ds)
    with pytest.raises(ValueError, match=r"header says 10 folds x \(300 matched \+ 300 mismatched\) = 6000 pairs, "
                                         r"but the file has 4 pair lines"):
        data.read_pairs(write_pairs(tmp_path / "p.txt", "10\t300", good), ds)
    with pytest.raises(ValueError, match=r"line 2: 'Ann_Lee 1 Bob_Ray 2', expected 'name i j' \(matched\)"):
        data.read_pairs(write_pairs(tmp_path / "p.txt", "1\t1", ["Ann_Lee 1 Bob_Ray 2", "Bob_Ray 1 Ann_Lee 2"]), ds)
    with pytest.raises(ValueError, match=r"line 3: 'Bob_Ray x Ann_Lee 2', expected 'name1 i name2 j'"):
        data.read_pairs(write_pairs(tmp_path / "p.txt", "1\t1", ["Ann_Lee 1 2", "Bob_Ray x Ann_Lee 2"]), ds)
    with pytest.raises(FileNotFoundError, match=r"pairs file .*nope.txt not found"):
        data.read_pairs(tmp_path / "nope.txt", ds)


# --------------------------------------------------------------------------------------------- other datasets

def test_utkface_names_and_malformed(tmp_path: Path) -> None:
    root = tmp_path / "utkface"
    for name in ("26_0_1_20170116171048641.jpg.chip.jpg", "3_1_4_20161221193130283.jpg.chip.jpg",
                 "UTKFace/70_1_0_20170110153238490.jpg", "61_1_20170109142408075.jpg.chip.jpg",
                 "30_2_0_20170110153238490.jpg.chip.jpg"):
        image(root / name)
    ds = data.load_dataset("utkface", tmp_path)
    assert ds.paths == ["26_0_1_20170116171048641.jpg.chip.jpg", "3_1_4_20161221193130283.jpg.chip.jpg",
                        "UTKFace/70_1_0_20170110153238490.jpg"]
    assert ds.gender.tolist() == [0, 1, 1] and ds.attributes["age"].tolist() == [26, 3, 70]
    assert ds.attributes["race"].tolist() == [1, 4, 0] and ds.identity.tolist() == [0, 1, 2]
    assert ds.summary()["people"] is None and len(ds.problems) == 2
    assert ds.problems[0].startswith("30_2_0_20170110153238490.jpg.chip.jpg: malformed UTKFace name")
    with pytest.raises(ValueError, match=r"dataset 'utkface' has no identities"):
        data.dataset_pairs(ds)


def test_agedb_names_and_agedb30_pairs(tmp_path: Path) -> None:
    root = tmp_path / "agedb"
    k = 0
    for person in range(12):
        for age in (20, 25, 50, 55):
            image(root / f"{k}_Person{person:02d}_{age}_{'mf'[person % 2]}.jpg")
            k += 1
    image(root / "bad_name.jpg")
    ds = data.load_dataset("agedb", tmp_path)
    assert len(ds) == 48 and ds.summary()["people"] == 12 and ds.summary()["male"] == 24
    assert ds.problems == ["bad_name.jpg: malformed AgeDB name (expected id_Name_age_gender.jpg, gender m/f); skipped"]
    pairs = data.agedb30_pairs(ds, n_pairs=40, seed=1, n_folds=2)
    age = ds.attributes["age"]
    assert len(pairs) == 40 and (np.abs(age[pairs.left] - age[pairs.right]) == 30).all()
    assert ((ds.identity[pairs.left] == ds.identity[pairs.right]) == pairs.same).all() and pairs.same.sum() == 20
    fold_people = [set(ds.identity[np.r_[pairs.left, pairs.right][np.r_[pairs.fold, pairs.fold] == f]]) for f in (0, 1)]
    assert not fold_people[0] & fold_people[1]
    again = data.agedb30_pairs(ds, n_pairs=40, seed=1, n_folds=2)
    other = data.agedb30_pairs(ds, n_pairs=40, seed=2, n_folds=2)
    assert np.array_equal(pairs.left, again.left) and not np.array_equal(pairs.left, other.left)
    with pytest.raises(ValueError, match=r"agedb: fold 0 has only 12 mated pairs 30 years apart, 30 needed"):
        data.agedb30_pairs(ds, n_pairs=120, seed=0, n_folds=2)
    with pytest.raises(ValueError, match=r"n_pairs=50: expected a positive multiple of 2 x n_folds = 20"):
        data.agedb30_pairs(ds, n_pairs=50)


def ground_truth(path: Path, subject: str, gender: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{subject}.txt").write_bytes(f"id=cfrS{subject}\r\ngender={gender}\r\nyob=1960\r\nrace=White\r\n".encode())


def test_colorferet_ground_truth_layout(tmp_path: Path) -> None:
    dvd1, dvd2 = tmp_path / "colorferet" / "colorferet" / "dvd1" / "data", tmp_path / "colorferet" / "colorferet" / "dvd2" / "data"
    for name in ("00001_930831_fa.ppm", "00001_930831_fb_a.ppm", "00002_940128_hl.ppm"):
        image(dvd1 / "images" / name[:5] / name, fmt="PPM")
    image(dvd1 / "smaller" / "00001" / "00001_930831_fa.ppm", fmt="PPM")  # same recording, smaller: not read
    (dvd1 / "images" / "00001" / "00001_930831_pl.ppm.bz2").write_bytes(b"BZh9")
    image(dvd2 / "images" / "00740" / "00740_960530_qr.jpg")
    image(dvd2 / "images" / "00740" / "notes.jpg")
    ground_truth(dvd1 / "ground_truths" / "name_value" / "00001", "00001", "Male")
    ground_truth(dvd2 / "ground_truths" / "name_value" / "00740", "00740", "Female")
    ds = data.load_dataset("colorferet", tmp_path)
    assert ds.image_ids.tolist() == ["00001_930831_fa", "00001_930831_fb_a", "00002_940128_hl", "00740_960530_qr"]
    assert ds.gender.tolist() == [0, 0, -1, 1] and ds.identity_names == ["00001", "00002", "00740"]
    assert ds.attributes["pose"].tolist() == ["fa", "fb", "hl", "qr"]
    assert ds.attributes["age"].tolist() == [33, 33, -1, 36] and ds.attributes["race"][0] == "White"
    assert ds.problems == [
        "colorferet/dvd1/data/images/00001/00001_930831_pl.ppm.bz2: still bz2-compressed (run bunzip2 on it); skipped",
        "colorferet/dvd2/data/images/00740/notes.jpg: not a Color FERET image name "
        "<subject>_<yymmdd>_<pose>.ppm; skipped",
        "subject 00002: no ground_truths/name_value/00002/00002.txt; gender unknown (-1), kept"]
    assert len(data.load_dataset("colorferet", tmp_path, images_dir="smaller")) == 1


def test_lfw_protocol_pairs_for_colorferet_style_data(tmp_path: Path) -> None:
    ds = data.FaceDataset("colorferet", tmp_path, [f"{k}.ppm" for k in range(60)], [str(k) for k in range(60)],
                          np.repeat(np.arange(20), 3), [f"{p:05d}" for p in range(20)], np.repeat(np.arange(20) % 2, 3))
    pairs = data.lfw_protocol_pairs(ds, seed=0, n_pairs=40, n_folds=2)
    assert len(pairs) == 40 and pairs.same.sum() == 20 and np.bincount(pairs.fold).tolist() == [20, 20]
    assert ((ds.identity[pairs.left] == ds.identity[pairs.right]) == pairs.same).all()
    assert len(set(zip(pairs.left.tolist(), pairs.right.tolist()))) == 40
    with pytest.raises(ValueError, match=r"colorferet: fold 0 has only 6 mated pairs, 300 needed"):
        data.dataset_pairs(ds)
    fewer = data.lfw_protocol_pairs(ds, seed=0, n_folds=2)  # a folder of the user's: what every fold allows
    assert len(fewer) == 2 * 2 * 30 and fewer.same.sum() == 60  # 10 people of 3 images per fold: 30 mated
    assert ((ds.identity[fewer.left] == ds.identity[fewer.right]) == fewer.same).all()
    single = data.FaceDataset("folder", tmp_path, [f"{k}.png" for k in range(6)], [str(k) for k in range(6)],
                              np.arange(6), [f"p{k}" for k in range(6)], np.arange(6) % 2)
    with pytest.raises(ValueError, match=r"folder: a fold of people has no mated pair"):
        data.dataset_pairs(single)


def test_folder_with_csv_labels(tmp_path: Path) -> None:
    for k in range(3):
        image(tmp_path / "imgs" / f"{k}.png")
    (tmp_path / "labels.csv").write_text("path,gender,identity,age,site\nimgs/0.png,m,ann,30,a\n"
                                         "imgs/1.png,F,bob,41,b\nimgs/2.png,1,ann,35,c\n")
    ds = data.load_dataset("folder", tmp_path)
    assert ds.gender.tolist() == [0, 1, 1] and ds.identity.tolist() == [0, 1, 0] and ds.identity_names == ["ann", "bob"]
    assert ds.attributes["age"].tolist() == [30, 41, 35] and ds.attributes["site"].tolist() == ["a", "b", "c"]
    assert ds.abs_paths()[2] == tmp_path / "imgs" / "2.png"
    (tmp_path / "nolabel.csv").write_text("path,gender\nimgs/0.png,0\n")
    assert data.load_dataset("folder", tmp_path, labels="nolabel.csv").summary()["people"] is None
    (tmp_path / "bad.csv").write_text("path,gender\nimgs/0.png,0\nimgs/1.png,x\n")
    with pytest.raises(ValueError, match=r"bad.csv line 3: gender='x', expected 0/1, m/f or male/female"):
        data.load_dataset("folder", tmp_path, labels="bad.csv")
    (tmp_path / "bad.csv").write_text("file,sex\nimgs/0.png,0\n")
    with pytest.raises(ValueError, match=r"bad.csv: columns \['file', 'sex'\], expected path,gender"):
        data.load_dataset("folder", tmp_path, labels="bad.csv")
    (tmp_path / "bad.csv").write_text("path,gender\nimgs/9.png,0\n")
    with pytest.raises(FileNotFoundError, match=r"bad.csv line 2: image .*imgs/9.png not found"):
        data.load_dataset("folder", tmp_path, labels="bad.csv")
    with pytest.raises(FileNotFoundError, match=r"labels file .*none.csv not found"):
        data.load_dataset("folder", tmp_path, labels="none.csv")


def test_unknown_and_missing_datasets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dataset='celeba': expected one of lfw, utkface, agedb, colorferet, folder"):
        data.load_dataset("celeba", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"agedb: no dataset folder .*agedb; get it with `mifgsm data fetch"):
        data.load_dataset("agedb", tmp_path)
    (tmp_path / "lfw").mkdir()
    with pytest.raises(FileNotFoundError, match=r"lfw: .*lfw is incomplete \(nothing matches \['pairs.txt'"):
        data.load_dataset("lfw", tmp_path)


# --------------------------------------------------------------------------------------------- containers

def test_balanced_subset() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [-1] * 5)
    idx, message = data.balanced_subset(labels, 40, seed=3)
    assert len(idx) == 40 and (np.bincount(labels[idx]) == [20, 20]).all() and (np.diff(idx) > 0).all()
    assert message == "drew 20 male + 20 female = 40 images; 5 images of unknown gender left out"
    assert np.array_equal(idx, data.balanced_subset(labels, 40, seed=3)[0])
    assert not np.array_equal(idx, data.balanced_subset(labels, 40, seed=4)[0])
    idx, message = data.balanced_subset(labels[:80], 5000, seed=0)
    assert len(idx) == 60 and message == "drew 30 male + 30 female = 60 images (asked for 5000: only 30 female images)"
    with pytest.raises(ValueError, match=r"labels: 50 male and 0 female images; a balanced subset needs both"):
        data.balanced_subset(labels[:50], 10, seed=0)
    with pytest.raises(ValueError, match=r"n=1: expected an integer >= 2"):
        data.balanced_subset(labels, 1, seed=0)
    with pytest.raises(ValueError, match=r"labels: expected a 1-D array of 0 \(male\), 1 \(female\) or -1"):
        data.balanced_subset(np.array([0, 2]), 2, seed=0)


def test_face_dataset_subset_and_validation(tmp_path: Path) -> None:
    ds = data.FaceDataset("x", tmp_path, ["a.jpg", "b.jpg", "c.jpg"], ["a", "b", "c"], [0, 1, 0], ["p", "q"],
                          [0, 1, -1], {"age": [1, 2, 3]}, ["one problem"])
    sub = ds.subset([2, 0])
    assert sub.paths == ["c.jpg", "a.jpg"] and sub.attributes["age"].tolist() == [3, 1] and sub.problems == ["one problem"]
    assert sub.summary() == {"dataset": "x", "root": str(tmp_path), "images": 2, "people": 1, "male": 1, "female": 0,
                             "unknown_gender": 1, "problems": 1}
    with pytest.raises(ValueError, match=r"indices: out of range for 3 images"):
        ds.subset([3])
    with pytest.raises(ValueError, match=r"indices: expected a 1-D array of integers"):
        ds.subset([0.5])
    with pytest.raises(ValueError, match=r"gender has shape \(2,\), expected \(3,\) like paths"):
        data.FaceDataset("x", tmp_path, ["a", "b", "c"], ["a", "b", "c"], [0, 0, 0], ["p"], [0, 1])
    with pytest.raises(ValueError, match=r"duplicate image ids \['a'\]"):
        data.FaceDataset("x", tmp_path, ["a", "b"], ["a", "a"], [0, 0], ["p"], [0, 1])
    with pytest.raises(ValueError, match=r"gender values \[0, 2\], expected 0 \(male\), 1 \(female\) or -1"):
        data.FaceDataset("x", tmp_path, ["a", "b"], ["a", "b"], [0, 0], ["p"], [0, 2])
    with pytest.raises(ValueError, match=r"Pairs: left, right, same and fold must be 1-D arrays of one length"):
        data.Pairs([0, 1], [1], [True], [0])


# --------------------------------------------------------------------------------------------- fetching

def test_fetch_links_the_mirror(mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = data.fetch("lfw", tmp_path / "data", mirror=mirror)
    assert target == tmp_path / "data" / "lfw" and target.is_symlink()
    assert data.fetch("lfw", tmp_path / "data", mirror=mirror) == target  # already there: nothing to do
    assert len(data.load_dataset("lfw", tmp_path / "data")) == 7701
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    assert data.fetch("utkface", tmp_path / "data").resolve() == (mirror / "utkface").resolve()
    with pytest.raises(FileNotFoundError, match=r"mirror .* has no agedb/ folder"):
        data.fetch("agedb", tmp_path / "data")


def test_fetch_without_source_or_mirror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"AgeDB is licence-restricted .* unpack it so that its images lie "
                                                rf"below {re.escape(str(tmp_path))}/agedb"):
        data.fetch("agedb", tmp_path)
    with pytest.raises(ValueError, match=r"dataset='folder': fetch knows lfw, utkface, agedb, colorferet"):
        data.fetch("folder", tmp_path)
    (tmp_path / "m" / "lfw").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"mirror folder .*lfw is incomplete: nothing matches \['pairs.txt'"):
        data.fetch("lfw", tmp_path / "d", mirror=tmp_path / "m")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def serve():
    """Serve a folder on 127.0.0.1 (a free port) for the duration of a test; yields a function folder -> URL."""
    servers = []

    def start(folder: Path) -> str:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_fetch_lfw_over_http_checks_pinned_sha256(mirror: Path, tmp_path: Path, serve) -> None:
    """The real download path: pooch over a loopback server, the manifest's pinned sha256 for the text files
    (so they must match the mirror's files) and a small archive in the layout of lfw-funneled.tgz."""
    served = tmp_path / "served"
    served.mkdir()
    for name in ("pairs.txt", "male_names.txt", "female_names.txt"):
        shutil.copy(mirror / "lfw" / name, served / name)
    people = ["Abel_Pacheco", "Yasser_Arafat", "Tara_Kirk"]
    with tarfile.open(served / "lfw-funneled.tgz", "w:gz") as archive:
        for person in people:
            archive.add(mirror / "lfw" / "lfw" / person, arcname=f"lfw_funneled/{person}")
    url = serve(served)
    manifest = data.load_manifest("lfw")
    manifest["files"] = [{**f, "url": url + f["fname"]} for f in manifest["files"]]
    manifest["files"][0]["sha256"] = sha256(served / "lfw-funneled.tgz")
    target = data.fetch("lfw", tmp_path / "data", progress=False, manifest=manifest)
    ds = data.load_dataset("lfw", tmp_path / "data")
    assert ds.root == target and sorted(set(ds.identity_names)) == sorted(people) and len(ds) == 11
    assert ds.paths[0].startswith("lfw_funneled/") and (ds.gender == -1).sum() == 1

    bad = {**manifest, "files": [{**manifest["files"][1], "sha256": "0" * 64}]}
    with pytest.raises(ValueError, match=r"lfw: pairs.txt from http://127.0.0.1:\d+/pairs.txt does not match its "
                                         r"pinned sha256 0{64}; refused, not kept"):
        data.fetch("lfw", tmp_path / "other", progress=False, manifest=bad)
    assert not (tmp_path / "other" / "lfw" / "pairs.txt").exists()


def test_fetch_utkface_registry_over_http(mirror: Path, tmp_path: Path, serve) -> None:
    manifest = data.load_manifest("utkface")
    manifest["base_url"] = serve(mirror / "utkface")
    manifest["registry"] = "\n".join(manifest["registry"].splitlines()[:5])
    target = data.fetch("utkface", tmp_path, progress=False, manifest=manifest)
    assert len(list(target.iterdir())) == 5 and len(data.load_dataset("utkface", tmp_path)) == 5
    fname = manifest["registry"].split()[0]
    manifest["registry"] = f"{fname} {'f' * 64}"
    with pytest.raises(ValueError, match=rf"utkface: {fname} from .* does not match its pinned sha256"):
        data.fetch("utkface", tmp_path / "again", progress=False, manifest=manifest)
    assert not (tmp_path / "again" / "utkface" / fname).exists()


def test_utkface_registry_pins_every_mirror_file(mirror: Path) -> None:
    registry = dict(line.split() for line in data.load_manifest("utkface")["registry"].splitlines())
    files = sorted(p.name for p in (mirror / "utkface").iterdir())
    assert sorted(registry) == files and len(files) == 9780
    assert all(sha256(mirror / "utkface" / f) == registry[f] for f in files)


def test_a_download_that_fails_is_tried_again(mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server error (or a dropped connection) is retried up to ``DOWNLOAD_ATTEMPTS`` times, then reported."""
    import requests

    monkeypatch.setattr(store, "RETRY_WAIT_S", 0.0)
    shutil.copy(mirror / "lfw" / "pairs.txt", tmp_path / "pairs.txt")
    failures = {"left": store.DOWNLOAD_ATTEMPTS - 1}

    class Flaky(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if failures["left"]:
                failures["left"] -= 1
                self.send_error(503)
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Flaky, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pairs.txt"
    try:
        got = store._retrieve(url, known_hash=f"sha256:{sha256(tmp_path / 'pairs.txt')}", fname="pairs.txt",
                              path=tmp_path / "got", progressbar=False)
        assert failures["left"] == 0 and Path(got).read_bytes() == (tmp_path / "pairs.txt").read_bytes()
        failures["left"] = store.DOWNLOAD_ATTEMPTS
        with pytest.raises(requests.exceptions.HTTPError, match="503"):
            store._retrieve(url, known_hash=None, fname="again.txt", path=tmp_path / "got", progressbar=False)
        assert failures["left"] == 0, "every attempt was made"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_offline_says_how_to_get_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "RETRY_WAIT_S", 0.0)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    manifest = {**data.load_manifest("lfw")}
    manifest["files"] = [{**manifest["files"][1], "url": f"http://127.0.0.1:{port}/pairs.txt"}]
    with pytest.raises(ConnectionError, match=rf"lfw: could not download pairs.txt .* `mifgsm data fetch lfw "
                                              rf"--mirror DIR` or {MIRROR_ENV}=DIR"):
        data.fetch("lfw", tmp_path, progress=False, manifest=manifest)
