"""Bad input, one test per row of the book's page "What happens with bad input" (``book/bad_input.md``).

Every bad input is a real file built here from images of the data mirror, and is checked through the command line
(``mifgsm_lib.cli.main`` returns exit code 2 and prints one line on stderr that names the file or parameter and what
was expected) and through the library (the exception and its message). Around them: a cached step sees an edited
image and label, a cache moved with its data is reused (no absolute path in a key), and every kind of damaged cache
entry is moved aside with a warning and recomputed to the same result.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mifgsm_lib import cli, data, faces, methods, pipeline
from mifgsm_lib.cache import save_npz
from mifgsm_lib.config import RunConfig
from mifgsm_lib.faces.alignment import load_rgb
from mifgsm_lib.validation import check_eps_list

#: Four people of the LFW mirror with three images each: two men, two women (12 images).
PEOPLE = {"Aaron_Peirsol": "m", "Adam_Sandler": "m", "Ai_Sugiyama": "f", "Aicha_El_Ouafi": "f"}
#: A person outside that set, whose image replaces one of theirs.
STRANGER = "Al_Gore"


# --------------------------------------------------------------------------------------------- helpers


def lfw_images(mirror: Path, person: str, n: int = 3) -> list[Path]:
    folder = mirror / "lfw" / "lfw" / person
    return sorted(folder.iterdir())[:n]


@pytest.fixture(scope="module")
def images(mirror: Path) -> list[tuple[Path, str, str]]:
    """The 12 mirror images: (path, person, gender)."""
    return [(p, person, g) for person, g in PEOPLE.items() for p in lfw_images(mirror, person)]


def csv_lines(images: list[tuple[Path, str, str]]) -> list[str]:
    """The lines of a labels.csv of ``images``: the header (line 1), then one row per image (lines 2...)."""
    return ["path,gender,identity", *(f"{p.name},{g},{person}" for p, person, g in images)]


def make_folder(root: Path, images: list[tuple[Path, str, str]], lines: list[str] | None = None,
                encoding: str = "utf-8") -> Path:
    """A ``folder`` dataset: the images copied to ``root`` and a labels.csv of ``lines`` (default
    :func:`csv_lines`)."""
    root.mkdir(parents=True, exist_ok=True)
    for path, _, _ in images:
        shutil.copy2(path, root / path.name)
    lines = lines if lines is not None else csv_lines(images)
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding=encoding)
    return root


def valid_pairs(images: list[tuple[Path, str, str]]) -> list[str]:
    """A pairs.txt of 2 folds x (3 matched + 3 mismatched) pairs over the 12 images (LFW View 2's format)."""
    n = {person: [int(p.stem[-4:]) for p, who, _ in images if who == person] for person in PEOPLE}
    a, b, c, d = PEOPLE
    return ["2\t3",
            f"{a}\t{n[a][0]}\t{n[a][1]}", f"{b}\t{n[b][0]}\t{n[b][1]}", f"{c}\t{n[c][0]}\t{n[c][1]}",
            f"{a}\t{n[a][0]}\t{c}\t{n[c][0]}", f"{b}\t{n[b][0]}\t{d}\t{n[d][0]}", f"{a}\t{n[a][1]}\t{d}\t{n[d][1]}",
            f"{d}\t{n[d][0]}\t{n[d][1]}", f"{a}\t{n[a][0]}\t{n[a][2]}", f"{c}\t{n[c][0]}\t{n[c][2]}",
            f"{b}\t{n[b][1]}\t{c}\t{n[c][1]}", f"{a}\t{n[a][2]}\t{b}\t{n[b][2]}", f"{c}\t{n[c][2]}\t{d}\t{n[d][2]}"]


def make_lfw(data_dir: Path, images: list[tuple[Path, str, str]], pairs: list[str], bom: bool = False) -> Path:
    """An LFW folder ``data_dir/lfw`` in the official layout: the images, pairs.txt and the gender lists."""
    root = data_dir / "lfw"
    for path, person, _ in images:
        (root / "lfw" / person).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, root / "lfw" / person / path.name)
    encoding = "utf-8-sig" if bom else "utf-8"
    (root / "pairs.txt").write_text("\n".join(pairs) + "\n", encoding=encoding)
    for gender, name in (("m", "male_names.txt"), ("f", "female_names.txt")):
        names = [p.name for p, _, g in images if g == gender]
        (root / name).write_text("\r\n".join(names) + "\r\n", encoding=encoding)
    return root


def config(data_dir: Path, artifacts: Path, dataset: str = "folder", **kw) -> RunConfig:
    return RunConfig(dataset=dataset, data_dir=str(data_dir), artifacts_dir=str(artifacts), profile="quick",
                     device="cpu", **kw)


def options(data_dir: Path, artifacts: Path, dataset: str = "folder") -> list[str]:
    return ["--dataset", dataset, "--data-dir", str(data_dir), "--artifacts", str(artifacts), "--profile", "quick",
            "--device", "cpu"]


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


#: A progress bar's line (tqdm), which a command prints on stderr while it works.
PROGRESS = re.compile(r"\d+%\|.*\| \d+/\d+ \[")


def user_error(code: int, err: str, command: str, *names: object) -> str:
    """The one line of a user error: exit code 2, that line on stderr (besides the folder read), naming ``names``."""
    assert code == 2, err
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip() and not PROGRESS.search(line)]
    errors = [line for line in lines if line.startswith(f"mifgsm {command}: error: ")]
    others = [line for line in lines if line not in errors and not line.startswith(f"mifgsm {command}: reading ")]
    assert len(errors) == 1 and not others, f"expected one error line, got:\n{err}"
    for name in names:
        assert str(name) in errors[0], f"{name!r} not named in: {errors[0]}"
    return errors[0]


def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any reading of the dataset a failure that is not a user error (it would raise out of ``main``)."""
    def refuse(*_args, **_kw):
        raise AssertionError("work was done before the bad input was refused")

    monkeypatch.setattr(pipeline, "dataset", refuse)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, images) -> tuple[Path, Path, Path]:
    """The 12 images as a ``folder`` dataset, embedded once by ``mifgsm embed``: (data folder, artifacts, .npz)."""
    base = tmp_path_factory.mktemp("embedded")
    folder, artifacts, out = make_folder(base / "faces", images), base / "artifacts", base / "templates.npz"
    assert cli.main(["embed", *options(folder, artifacts), "--out", str(out)]) == 0
    return folder, artifacts, out


@pytest.fixture(scope="module")
def mini_lfw(tmp_path_factory: pytest.TempPathFactory, images) -> tuple[Path, Path, Path]:
    """The 12 images as an LFW folder with valid pairs, embedded once: (data dir, artifacts, .npz)."""
    base = tmp_path_factory.mktemp("lfw")
    make_lfw(base / "data", images, valid_pairs(images))
    out = base / "templates.npz"
    assert cli.main(["embed", *options(base / "data", base / "artifacts", "lfw"), "--out", str(out)]) == 0
    return base / "data", base / "artifacts", out


def copy_of(embedded: tuple[Path, Path, Path], where: Path) -> tuple[Path, Path]:
    """The embedded dataset and its artifacts copied to ``where`` (elsewhere: another absolute path)."""
    folder, artifacts, _ = embedded
    shutil.copytree(folder, where / "faces")
    shutil.copytree(artifacts, where / "artifacts")
    return where / "faces", where / "artifacts"


# --------------------------------------------------------------------------------------------- unreadable images


def _truncated(source: Path, target: Path) -> None:
    blob = source.read_bytes()
    target.write_bytes(blob[: len(blob) // 2])


def _empty(source: Path, target: Path) -> None:
    target.write_bytes(b"")


def _not_an_image(source: Path, target: Path) -> None:
    target.write_text("path,gender\nthis is a CSV file saved with a .jpg name\n")


def _float32(source: Path, target: Path) -> None:
    grey = np.asarray(Image.open(source).convert("L"), dtype=np.float32) / 255.0
    image = Image.fromarray(grey)
    assert image.mode == "F"
    image.save(target, format="TIFF")


def _chunk(kind: bytes, body: bytes) -> bytes:
    """A PNG chunk: length, kind, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb(source: Path, target: Path) -> None:
    """A 100-byte PNG that declares 30,000 x 30,000 pixels (a decompression bomb)."""
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                       + _chunk(b"IDAT", zlib.compress(b"\0" * 10)) + _chunk(b"IEND", b""))


@pytest.mark.parametrize("make, suffix, reason", [
    (_truncated, ".jpg", "truncated"),
    (_empty, ".jpg", "cannot identify image file"),
    (_not_an_image, ".jpg", "cannot identify image file"),
    (_float32, ".tif", "32-bit floating-point"),
    (_bomb, ".png", "decompression bomb"),
], ids=["truncated-jpeg", "0-byte", "not-an-image", "float32-tiff", "decompression-bomb"])
def test_an_unreadable_image_is_one_error_naming_it(make: Callable[[Path, Path], None], suffix: str, reason: str,
                                                    images, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    bad = folder / f"bad{suffix}"
    make(images[0][0], bad)
    with pytest.raises(ValueError, match=reason) as caught:
        load_rgb(bad)
    assert str(bad) in str(caught.value)
    (folder / "labels.csv").write_text(f"path,gender\n{bad.name},m\n")
    code, _, err = run(capsys, "embed", *options(folder, tmp_path / "art"), "--out", tmp_path / "t.npz")
    user_error(code, err, "embed", bad, reason)
    assert not (tmp_path / "t.npz").exists()


# --------------------------------------------------------------------------------------------- image modes


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_every_image_mode_reaches_the_model_as_a_person_sees_it(images, tmp_path: Path) -> None:
    source = images[6][0]
    rgb, grey = _rgb(source), np.asarray(Image.open(source).convert("L"))
    # 16-bit grey PNG: full range, and a dark one (every value <= 255 of 65535) that a viewer shows black
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    np.testing.assert_array_equal(load_rgb(tmp_path / "g16.png"), np.repeat(grey[..., None], 3, axis=2))
    Image.fromarray(grey.astype(np.uint16)).save(tmp_path / "dark16.png")
    assert load_rgb(tmp_path / "dark16.png").max() <= 1
    # palette: the palette's colours
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "palette.png"), np.asarray(palette.convert("RGB")))
    # alpha: opaque pixels as they are, transparent ones over white
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:, : grey.shape[1] // 2] = 0
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    seen = load_rgb(tmp_path / "rgba.png")
    assert (seen[:, : grey.shape[1] // 2] == 255).all()
    np.testing.assert_array_equal(seen[:, grey.shape[1] // 2:], rgb[:, grey.shape[1] // 2:])
    Image.merge("LA", (Image.fromarray(grey), Image.new("L", (grey.shape[1], grey.shape[0]), 255))).save(
        tmp_path / "la.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "la.png"), np.repeat(grey[..., None], 3, axis=2))
    # CMYK JPEG: the same colours (JPEG's loss aside)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert np.abs(load_rgb(tmp_path / "cmyk.jpg").astype(int) - rgb).mean() < 2
    # EXIF orientation 6 ("rotate 90° clockwise to show"): a portrait crop stored on its side is shown upright
    portrait = rgb[:, 15:135]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(portrait).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "exif.jpg", quality=100, exif=exif)
    assert _rgb(tmp_path / "exif.jpg").shape == (120, 150, 3), "stored on its side"
    shown = load_rgb(tmp_path / "exif.jpg")
    assert shown.shape == portrait.shape and np.abs(shown.astype(int) - portrait).mean() < 3
    # grey JPEG: three equal channels
    Image.fromarray(grey).save(tmp_path / "grey.jpg", quality=100)
    shown = load_rgb(tmp_path / "grey.jpg")
    assert shown.shape == rgb.shape and (shown == shown[..., :1]).all()
    assert np.abs(shown[..., 0].astype(int) - grey).mean() < 1
    # 16-bit RGB PNG (48 bits a pixel, written by hand: Pillow cannot write it): the same 8-bit colours
    h, w, _ = rgb.shape
    rows = b"".join(b"\0" + row.tobytes() for row in rgb.astype(">u2") * 257)
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    (tmp_path / "rgb48.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(rows))
                                         + _chunk(b"IEND", b""))
    np.testing.assert_array_equal(load_rgb(tmp_path / "rgb48.png"), rgb)
    # bilevel (mode "1"): black and white, as shown
    Image.fromarray(grey).convert("1").save(tmp_path / "bilevel.png")
    assert Image.open(tmp_path / "bilevel.png").mode == "1"
    np.testing.assert_array_equal(load_rgb(tmp_path / "bilevel.png"),
                                  np.repeat(np.asarray(Image.open(tmp_path / "bilevel.png").convert("L"))[..., None],
                                            3, axis=2))
    # 32-bit integer TIFF (mode "I"), on the 16-bit scale and on the 8-bit one: the same grey picture
    for name, scale in (("i16.tif", 257), ("i8.tif", 1)):
        Image.fromarray(grey.astype(np.int32) * scale).save(tmp_path / name)
        assert Image.open(tmp_path / name).mode == "I"
        np.testing.assert_array_equal(load_rgb(tmp_path / name), np.repeat(grey[..., None], 3, axis=2))


def test_image_modes_give_the_templates_of_the_picture_seen(images, tmp_path: Path, capsys) -> None:
    """Through ``mifgsm embed``: each re-encoded image gets the template of the picture it shows."""
    source = images[6][0]
    rgb, grey = _rgb(source), np.asarray(Image.open(source).convert("L"))
    folder = tmp_path / "faces"
    folder.mkdir()
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(grey).save(folder / "grey.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "g16.png")
    Image.fromarray(np.dstack([rgb, np.full(grey.shape, 255, np.uint8)])).save(folder / "rgba.png")
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=128)
    palette.save(folder / "palette.png")
    palette.convert("RGB").save(folder / "palette_rgb.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    exif = Image.Exif()
    exif[0x0112] = 6
    on_its_side = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    on_its_side.save(folder / "exif.jpg", quality=100, exif=exif)
    on_its_side.save(folder / "on_its_side.png")  # what a loader ignoring EXIF would see
    names = sorted(p.name for p in folder.iterdir())
    (folder / "labels.csv").write_text("path,gender\n" + "".join(f"{n},f\n" for n in names))
    code, out, err = run(capsys, "embed", *options(folder, tmp_path / "art"), "--out", tmp_path / "t.npz", "--json")
    assert code == 0, err
    found = np.load(tmp_path / "t.npz")
    z = dict(zip(found["image_ids"].tolist(), found["templates"]))
    chips = dict(zip(found["image_ids"].tolist(), pipeline.chips(config(folder, tmp_path / "art"))["chips"]))
    for shown, same in (("g16.png", "grey.png"), ("rgba.png", "rgb.png"), ("palette.png", "palette_rgb.png")):
        np.testing.assert_array_equal(chips[shown], chips[same])  # the same picture reaches the model
        np.testing.assert_allclose(z[shown], z[same], atol=1e-5)
    close = {n: float(np.linalg.norm(z[n] - z["rgb.png"])) for n in ("cmyk.jpg", "exif.jpg", "on_its_side.png")}
    # JPEG's loss moves a template far less than dlib's match threshold (0.6); ignoring EXIF moves it much more
    assert max(close["cmyk.jpg"], close["exif.jpg"]) < 0.15, close
    assert close["on_its_side.png"] > 4 * max(close["cmyk.jpg"], close["exif.jpg"]), close


# --------------------------------------------------------------------------------------------- labels (CSV)


def test_a_csv_with_a_utf8_bom_is_accepted(images, tmp_path: Path, capsys) -> None:
    folder = make_folder(tmp_path / "faces", images, encoding="utf-8-sig")
    assert (folder / "labels.csv").read_bytes().startswith(b"\xef\xbb\xbfpath,")
    ds = data.load_dataset("folder", folder)
    assert len(ds) == 12 and ds.paths[0] == images[0][0].name and int((ds.gender == data.FEMALE).sum()) == 6
    code, out, err = run(capsys, "data", "info", "folder", "--data-dir", folder, "--json")
    assert code == 0, err
    assert json.loads(out)["images"] == 12


@pytest.mark.parametrize("edit, error, message", [
    (lambda f: f[:4] + [f[3]] + f[4:], ValueError, r"line 5: image '.*' is listed twice \(first on line 4\)"),
    (lambda f: f[:5] + [f[5].rsplit(",", 1)[0]] + f[6:], ValueError, r"line 6: 2 fields, expected 3"),
    (lambda f: f[:5] + [f[5] + ",extra"] + f[6:], ValueError, r"line 6: 4 fields, expected 3"),
    (lambda f: [",".join(line.split(",")[::2]) for line in f], ValueError,
     r"columns \['path', 'identity'\], expected path,gender"),
    (lambda f: f[:2] + [f[2].replace(",m,", ",x,")] + f[3:], ValueError, r"line 3: gender='x'"),
    (lambda f: f + ["missing.jpg,f,Nobody"], FileNotFoundError, r"line 14: image .*missing.jpg not found"),
], ids=["duplicate-row", "missing-field", "extra-field", "missing-column", "unknown-gender", "missing-image"])
def test_a_bad_labels_csv_names_the_file_and_line(edit, error, message: str, images, tmp_path: Path, capsys) -> None:
    folder = make_folder(tmp_path / "faces", images, lines=edit(csv_lines(images)))
    with pytest.raises(error, match=message) as caught:
        data.load_dataset("folder", folder)
    assert str(caught.value).startswith(str(folder / "labels.csv"))
    code, _, err = run(capsys, "data", "info", "folder", "--data-dir", folder)
    assert re.search(message, user_error(code, err, "data", folder / "labels.csv"))


# --------------------------------------------------------------------------------------------- pairs


def test_pairs_that_make_no_sense_are_reported_and_left_out(images, tmp_path: Path, capsys) -> None:
    lines = valid_pairs(images)
    a, number = images[0][1], int(images[0][0].stem[-4:])
    other = int(images[1][0].stem[-4:])
    lines[1] = f"{a}\t{number}\t{number}"            # matched: an image with itself
    lines[4] = f"{a}\t{number}\t{a}\t{other}"        # mismatched: one person twice
    lines[8] = lines[2]                              # the pair of line 3, again
    root = make_lfw(tmp_path / "data", images, lines)
    ds = data.load_dataset("lfw", tmp_path / "data")
    found = data.read_pairs(root / "pairs.txt", ds)
    assert len(found) == 12 - 3
    assert [p.split(":")[0] for p in found.problems] == ["pairs.txt line 2", "pairs.txt line 5", "pairs.txt line 9"]
    assert "an image paired with itself" in found.problems[0]
    assert "a mismatched pair of one person" in found.problems[1]
    assert "the same pair as line 3" in found.problems[2]
    code, out, err = run(capsys, "data", "info", "lfw", "--data-dir", tmp_path / "data", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pairs"] == 9 and set(found.problems) <= set(report["problems"])


def test_a_matched_line_naming_two_people_is_an_error(images, tmp_path: Path, capsys) -> None:
    lines = valid_pairs(images)
    a, na = images[0][1], int(images[0][0].stem[-4:])
    b, nb = images[3][1], int(images[3][0].stem[-4:])
    lines[2] = f"{a}\t{na}\t{b}\t{nb}"  # in the matched part of fold 0
    root = make_lfw(tmp_path / "data", images, lines)
    with pytest.raises(ValueError, match=r"pairs.txt line 3: .* expected 'name i j' \(matched\)"):
        data.read_pairs(root / "pairs.txt", data.load_dataset("lfw", tmp_path / "data"))
    code, _, err = run(capsys, "verify", *options(tmp_path / "data", tmp_path / "art", "lfw"))
    user_error(code, err, "verify", root / "pairs.txt", "line 3", "expected 'name i j' (matched)")


def test_a_pair_naming_an_image_not_in_the_dataset_is_an_error_naming_line_and_image(images, tmp_path: Path,
                                                                                      capsys) -> None:
    lines = valid_pairs(images)
    a = images[0][1]
    lines[2] = f"{a}\t1\t99"  # Aaron_Peirsol_0099 does not exist
    root = make_lfw(tmp_path / "data", images, lines)
    message = "line 3: image Aaron_Peirsol_0099 is not in the dataset"
    with pytest.raises(ValueError, match=message):
        data.read_pairs(root / "pairs.txt", data.load_dataset("lfw", tmp_path / "data"))
    code, _, err = run(capsys, "verify", *options(tmp_path / "data", tmp_path / "art", "lfw"))
    user_error(code, err, "verify", root / "pairs.txt", message)


def test_pairs_and_gender_lists_with_a_utf8_bom_are_read(images, tmp_path: Path, capsys) -> None:
    make_lfw(tmp_path / "plain", images, valid_pairs(images))
    make_lfw(tmp_path / "bom", images, valid_pairs(images), bom=True)
    plain, bom = data.load_dataset("lfw", tmp_path / "plain"), data.load_dataset("lfw", tmp_path / "bom")
    np.testing.assert_array_equal(bom.gender, plain.gender)
    assert bom.problems == plain.problems
    assert len(data.dataset_pairs(bom)) == len(data.dataset_pairs(plain)) == 12
    code, out, err = run(capsys, "data", "info", "lfw", "--data-dir", tmp_path / "bom", "--json")
    assert code == 0 and json.loads(out)["pairs"] == 12, err


# --------------------------------------------------------------------------------------------- data folders


def test_an_incomplete_dataset_folder_is_an_error_not_the_mirror(mirror: Path, tmp_path: Path, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIFGSM_MIRROR", str(mirror))
    assert data.dataset_dir("lfw", tmp_path) == mirror / "lfw", "no folder of its own: the mirror"
    (tmp_path / "lfw").mkdir()
    shutil.copy(mirror / "lfw" / "pairs.txt", tmp_path / "lfw" / "pairs.txt")  # an interrupted copy
    with pytest.raises(FileNotFoundError, match=r"lfw is incomplete \(nothing matches \['male_names.txt'"):
        data.dataset_dir("lfw", tmp_path)
    for command in (["data", "info", "lfw", "--data-dir", tmp_path],
                    ["embed", *options(tmp_path, tmp_path / "art", "lfw"), "--out", tmp_path / "t.npz"]):
        code, _, err = run(capsys, *command)
        user_error(code, err, command[0], tmp_path / "lfw", "incomplete", "male_names.txt")
    code, _, err = run(capsys, "data", "fetch", "lfw", "--data-dir", tmp_path)
    user_error(code, err, "data", tmp_path / "lfw", "exists but is incomplete", "move it away")


def test_a_failed_download_leaves_nothing_that_blocks_the_next_fetch(mirror: Path, tmp_path: Path, capsys,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pooch
    import requests

    def no_network(url, known_hash, fname, path, processor=None, progressbar=False):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / f"{fname}.part").write_bytes(b"the first bytes")  # what an interrupted transfer leaves
        raise requests.exceptions.ConnectionError(f"{url}: Max retries exceeded (no network)")

    monkeypatch.setattr(pooch, "retrieve", no_network)
    monkeypatch.setattr(data.store, "RETRY_WAIT_S", 0.0)
    monkeypatch.delenv("MIFGSM_MIRROR", raising=False)
    with pytest.raises(ConnectionError, match=r"lfw: could not download lfw-funneled.tgz .* --mirror DIR"):
        data.fetch("lfw", tmp_path, progress=False)
    assert not (tmp_path / "lfw").exists()
    code, _, err = run(capsys, "data", "fetch", "lfw", "--data-dir", tmp_path)
    user_error(code, err, "data", "could not download", "--mirror DIR")
    assert not (tmp_path / "lfw").exists()
    code, out, err = run(capsys, "data", "fetch", "lfw", "--data-dir", tmp_path, "--mirror", mirror, "--json")
    assert code == 0, err
    assert (tmp_path / "lfw" / "pairs.txt").is_file()


def test_data_fetch_says_whether_it_linked_copied_downloaded_or_found_the_data(images, tmp_path: Path, capsys,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import pooch

    mirror = tmp_path / "mirror"
    make_lfw(mirror, images, valid_pairs(images))
    monkeypatch.delenv("MIFGSM_MIRROR", raising=False)

    def fetched(data_dir: Path, *more: object) -> tuple[str, str]:
        code, out, err = run(capsys, "data", "fetch", "lfw", "--data-dir", data_dir, *more, "--json")
        assert code == 0, err
        assert data.is_complete("lfw", data_dir)
        return json.loads(out)["how"], err

    how, err = fetched(tmp_path / "a", "--mirror", mirror)
    assert how == "linked" and f"(a link to the mirror's {(mirror / 'lfw').resolve()})" in err
    how, err = fetched(tmp_path / "a", "--mirror", mirror)
    assert how == "already there" and "(already there)" in err

    def no_links(self, *_args, **_kw):
        raise OSError("this file system has no symbolic links")

    monkeypatch.setattr(Path, "symlink_to", no_links)
    how, err = fetched(tmp_path / "b", "--mirror", mirror)
    assert how == "copied" and f"(copied from the mirror {mirror})" in err
    assert not (tmp_path / "b" / "lfw").is_symlink()

    def served(url, known_hash, fname, path, processor=None, progressbar=False):
        """What the server sends, unpacked as pooch would: the mini mirror's files."""
        if processor is not None:  # the image archive, unpacked into lfw/lfw_funneled/
            shutil.copytree(mirror / "lfw" / "lfw", Path(processor.extract_dir) / "lfw_funneled")
            return str(Path(path) / fname)
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.copy2(mirror / "lfw" / fname, Path(path) / fname)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", served)
    how, err = fetched(tmp_path / "c")
    assert how == "downloaded" and "(downloaded, each file's sha256 checked)" in err
    assert len(data.load_dataset("lfw", tmp_path / "c")) == len(images)


# --------------------------------------------------------------------------------------------- templates files


def _rewritten(path: Path, target: Path, change: Callable[[dict], dict]) -> Path:
    with np.load(path) as found:
        arrays = {k: found[k] for k in found.files if k != "__arrays__"}
    save_npz(target, change(arrays))
    return target


def _reordered(arrays: dict) -> dict:
    order = np.random.default_rng(0).permutation(len(arrays["templates"]))
    return {k: v[order] if v.ndim and len(v) == len(order) else v for k, v in arrays.items()}


def test_a_reordered_templates_file_is_aligned_by_image_id(mini_lfw, tmp_path: Path, capsys) -> None:
    data_dir, artifacts, templates = mini_lfw
    code, out, err = run(capsys, "verify", *options(data_dir, artifacts, "lfw"), "--json")
    assert code == 0, err
    clean = json.loads(out)
    assert f"mifgsm verify: reading lfw from {data_dir / 'lfw'}" in err and clean["data_folder"] == str(data_dir / "lfw")
    reordered = _rewritten(templates, tmp_path / "reordered.npz", _reordered)
    code, out, err = run(capsys, "verify", *options(data_dir, artifacts, "lfw"), "--templates", reordered, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n_pairs"] == clean["n_pairs"] == 12
    assert (result["accuracy_mean"], result["eer"]) == (clean["accuracy_mean"], clean["eer"])


@pytest.mark.parametrize("change, message", [
    (None, "has no template of 12 image(s) of 'lfw'"),
    (lambda a: {**a, "model": np.asarray("iresnet50")}, "templates of face model 'iresnet50', but --model is 'dlib'"),
    (lambda a: {k: v for k, v in a.items() if k != "image_ids"}, "with a 'image_ids' array"),
    (lambda a: {**a, "image_ids": np.r_[a["image_ids"][:1], a["image_ids"][:-1]]}, "appears 2 times; expected one "
     "template per image"),
    (lambda a: {**a, "preprocessing": np.asarray(json.dumps({**json.loads(str(a["preprocessing"])), "weights": "0" * 16}))},
     "templates of dlib with other weights (digest 0000000000000000)"),
], ids=["another-dataset", "another-model", "no-image-ids", "repeated-image-id", "other-weights"])
def test_a_foreign_templates_file_is_refused(change, message: str, mini_lfw, embedded, tmp_path: Path,
                                             capsys) -> None:
    data_dir, artifacts, templates = mini_lfw
    foreign = embedded[2] if change is None else _rewritten(templates, tmp_path / "foreign.npz", change)
    cfg = config(data_dir, artifacts, "lfw")
    with pytest.raises(ValueError, match=re.escape(message)):
        arrays = cli._templates_file(str(foreign), cfg)
        cli._aligned(arrays, cfg, str(foreign), np.arange(12))
    code, _, err = run(capsys, "verify", *options(data_dir, artifacts, "lfw"), "--templates", foreign)
    user_error(code, err, "verify", foreign, message)
    code, _, err = run(capsys, "evaluate", *options(data_dir, artifacts, "lfw"), "--setting", "A",
                       "--templates", foreign)
    user_error(code, err, "evaluate", foreign, "12 of its 12 templates are of images not in 'lfw'" if change is None
               else message)


# --------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_an_absent_gpu_is_refused_before_any_work_even_when_cached(device: str, embedded, tmp_path: Path, capsys,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    folder, artifacts, _ = embedded
    with pytest.raises(ValueError, match=rf"device='{device}': .* not available on this machine"):
        RunConfig(dataset="folder", data_dir=str(folder), artifacts_dir=str(artifacts), device=device)
    no_work(monkeypatch)
    arguments = [a if a != "cpu" else device for a in options(folder, artifacts)]
    code, _, err = run(capsys, "embed", *arguments, "--out", tmp_path / "t.npz")
    user_error(code, err, "embed", f"device='{device}'", "not available")
    assert "reading" not in err and not (tmp_path / "t.npz").exists()


@pytest.mark.parametrize("command, where, error", [
    ("embed", lambda tmp: ["--out", tmp], IsADirectoryError),
    ("embed", lambda tmp: ["--out", tmp / "file.txt" / "t.npz"], NotADirectoryError),
    ("attack", lambda tmp: ["--out", tmp], IsADirectoryError),
    ("attack", lambda tmp: ["--out", tmp / "a.npz", "--images-out", tmp / "file.txt"], NotADirectoryError),
], ids=["embed-out-is-a-folder", "embed-out-parent-is-a-file", "attack-out-is-a-folder", "attack-images-out-is-a-file"])
def test_an_output_path_is_checked_before_compute(command: str, where, error, tmp_path: Path, capsys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file.txt").write_text("a file")
    arguments = [str(a) for a in where(tmp_path)]
    option, path = arguments[-2:]
    if option == "--out":
        with pytest.raises(error, match=re.escape(f"--out {path}")):
            cli._output(path)
    no_work(monkeypatch)
    code, _, err = run(capsys, command, *options(tmp_path, tmp_path / "art"), *arguments)
    user_error(code, err, command, f"{option} {path}")
    assert not (tmp_path / "a.npz").exists()


def test_an_output_folder_without_write_permission_is_refused_before_compute(tmp_path: Path, capsys,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated (CI runs as root, who may write anywhere): the folder of ``--out`` is not writable."""
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    no_work(monkeypatch)
    code, _, err = run(capsys, "embed", *options(tmp_path, tmp_path / "art"), "--out", locked / "t.npz")
    user_error(code, err, "embed", f"--out {locked / 't.npz'}", "permission denied")

    def refused(self, *args, **kw):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refused)
    code, _, err = run(capsys, "embed", *options(tmp_path, tmp_path / "art"), "--out", tmp_path / "new" / "t.npz")
    user_error(code, err, "embed", f"cannot create {tmp_path / 'new'}", "permission denied")


def test_an_unreadable_labels_file_is_one_error_naming_it(images, tmp_path: Path, capsys,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated (CI runs as root): labels.csv cannot be opened."""
    from mifgsm_lib.data import datasets

    folder = make_folder(tmp_path / "faces", images)

    def refused(path, *args, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(datasets, "open", refused, raising=False)
    code, _, err = run(capsys, "data", "info", "folder", "--data-dir", folder)
    user_error(code, err, "data", folder / "labels.csv", "Permission denied")


def test_repeated_values_in_a_list_are_refused(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="0.01 is given twice"):
        check_eps_list([0.01, 0.010])
    with pytest.raises(ValueError, match="'mi-fgsm' is given twice"):
        methods.check_methods(["mi-fgsm", "fgsm", "mi-fgsm"], "one-step")
    no_work(monkeypatch)
    code, _, err = run(capsys, "attack", *options(tmp_path, tmp_path / "art"), "--eps", "0.01", "0.010",
                       "--out", tmp_path / "a.npz")
    user_error(code, err, "attack", "--eps", "given twice")


def test_mi_fgsm_on_a_tiny_dataset_adapts_its_batch_or_says_the_minimum(images, embedded, tmp_path: Path,
                                                                       capsys) -> None:
    folder, artifacts, _ = embedded
    assert pipeline.vclub_min_images(2) == 6  # 20 % held out: 2 images, one of each gender
    code, out, err = run(capsys, "attack", *options(folder, artifacts), "--eps", "0.01", "--out", tmp_path / "a.npz",
                         "--json")
    assert code == 0, err  # 12 images: vCLUB is trained on batches of its 9 training images, not 256
    with np.load(tmp_path / "a.npz") as attacked:
        assert attacked["templates_eps0"].shape == (12, 128) and np.isfinite(attacked["templates_eps0"]).all()
    four = [i for i in images if i[1] == "Aaron_Peirsol"][:2] + [i for i in images if i[1] == "Ai_Sugiyama"][:2]
    small = make_folder(tmp_path / "four", four)
    with pytest.raises(ValueError, match=r"4 images of known gender .* at least 6 images and 2 of each class"):
        pipeline.vclub_split(config(small, tmp_path / "art"))
    code, _, err = run(capsys, "attack", *options(small, tmp_path / "art"), "--eps", "0.01",
                       "--out", tmp_path / "b.npz")
    line = user_error(code, err, "attack", "'folder'", "at least 6 images")
    assert "batch_size" not in line


def test_a_bug_still_shows_its_traceback(embedded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, artifacts, _ = embedded
    for bug in (KeyError("templates"), NotImplementedError(), TypeError("unsupported operand"),
                RuntimeError("mat1 and mat2 shapes cannot be multiplied (torch)")):
        def broken(*_args, bug=bug, **_kw):
            raise bug

        monkeypatch.setattr(pipeline, "templates", broken)
        with pytest.raises(type(bug)):
            cli.main(["embed", *options(folder, artifacts), "--out", str(tmp_path / "t.npz")])


def test_a_message_of_several_lines_is_printed_on_one(tmp_path: Path, capsys) -> None:
    pytest.importorskip("papermill")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [lfw\nprofile: quick\n")  # an unclosed list: YAML's message spans several lines
    code, _, err = run(capsys, "book", "-f", bad, "--no-build", "--out", tmp_path)
    user_error(code, err, "book", "-f", bad, "not a YAML file")


# --------------------------------------------------------------------------------------------- the cache


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop_templates(path: Path) -> None:
    """The .npz without its ``templates`` array (the file still lists it)."""
    import zipfile

    with zipfile.ZipFile(path) as source:
        kept = {n: source.read(n) for n in source.namelist() if n != "templates.npy"}
    with zipfile.ZipFile(path, "w") as target:
        for name, blob in kept.items():
            target.writestr(name, blob)


def _text(path: Path) -> None:
    path.write_text("not a checkpoint: a text file saved over it")


@pytest.mark.parametrize("damage", [_truncate, _drop_templates], ids=["npz-truncated", "npz-missing-an-array"])
def test_a_damaged_npz_entry_is_moved_aside_and_recomputed(damage, embedded, tmp_path: Path, capsys) -> None:
    folder, artifacts = copy_of(embedded, tmp_path)
    cfg = config(folder, artifacts)
    first = pipeline.templates(cfg)
    (entry,) = (artifacts / "templates").glob("*.npz")
    damage(entry)
    with pytest.warns(UserWarning, match=rf"{re.escape(str(entry))}: unreadable cache entry .* moved aside to "
                                         rf"{entry.name}\.unreadable-"):
        again = pipeline.templates(cfg)
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    assert len(list(entry.parent.glob(f"{entry.name}.unreadable-*"))) == 1
    damage(entry)  # through the command line: a warning, the same templates, exit 0
    with pytest.warns(UserWarning, match=rf"{entry.name}: unreadable cache entry"):
        code, _, err = run(capsys, "embed", *options(folder, artifacts), "--out", tmp_path / "t.npz")
    assert code == 0, err
    with np.load(tmp_path / "t.npz") as written, np.load(embedded[2]) as before:
        np.testing.assert_array_equal(written["templates"], before["templates"])


@pytest.mark.parametrize("damage", [_text, _truncate], ids=["pt-text", "pt-truncated"])
def test_a_damaged_pt_entry_is_moved_aside_and_recomputed(damage, embedded, tmp_path: Path) -> None:
    folder, artifacts = copy_of(embedded, tmp_path)
    cfg = config(folder, artifacts)
    model, scores = pipeline.mlp(cfg)
    (entry,) = (artifacts / "mlp").glob("*.pt")
    damage(entry)
    with pytest.warns(UserWarning, match=rf"{re.escape(str(entry))}: unreadable cache entry .*moved aside"):
        again, again_scores = pipeline.mlp(cfg)
    assert again_scores == scores
    for (name, w), (_, w_again) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(w, w_again), name
    assert len(list(entry.parent.glob(f"{entry.name}.unreadable-*"))) == 1


def test_a_cached_step_sees_an_edited_image_and_label(mirror: Path, embedded, tmp_path: Path, capsys) -> None:
    folder, artifacts = copy_of(embedded, tmp_path)
    cfg = config(folder, artifacts)
    first = pipeline.templates(cfg)
    edited = folder / first["image_ids"][0]
    stranger = lfw_images(mirror, STRANGER, 1)[0]
    edited.write_bytes(stranger.read_bytes())  # the same file name, another face
    second = pipeline.templates(cfg)
    assert not np.allclose(second["templates"][0], first["templates"][0])
    np.testing.assert_array_equal(second["templates"][1:], first["templates"][1:])
    alone = faces.embed(pipeline.face_model(cfg), faces.align_faces([stranger], "dlib", progress=False).chips,
                        progress=False)
    np.testing.assert_allclose(second["templates"][0], alone[0], atol=1e-4)
    labels = folder / "labels.csv"
    relabelled = first["image_ids"][1]
    assert second["gender"][1] == data.MALE
    labels.write_text(labels.read_text().replace(f"{relabelled},m,", f"{relabelled},f,"))
    third = pipeline.templates(cfg)
    assert third["gender"][1] == data.FEMALE
    np.testing.assert_array_equal(third["templates"], second["templates"])
    code, _, err = run(capsys, "embed", *options(folder, artifacts), "--out", tmp_path / "t.npz")
    assert code == 0, err
    with np.load(tmp_path / "t.npz") as written:
        np.testing.assert_array_equal(written["templates"], third["templates"])
        np.testing.assert_array_equal(written["gender"], third["gender"])


def test_a_cache_moved_with_its_data_is_reused(embedded, tmp_path: Path, capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    original_folder, original_artifacts, original = embedded
    folder, artifacts = copy_of(embedded, tmp_path / "elsewhere")

    def recompute(*_args, **_kw):
        raise AssertionError("a result was recomputed after the cache moved")

    monkeypatch.setattr(faces, "align_faces", recompute)
    monkeypatch.setattr(faces, "embed", recompute)
    moved = pipeline.templates(config(folder, artifacts))
    with np.load(original) as before:
        np.testing.assert_array_equal(moved["templates"], before["templates"])
    code, _, err = run(capsys, "embed", *options(folder, artifacts), "--out", tmp_path / "t.npz")
    assert code == 0, err
    for record in artifacts.rglob("*.json"):
        text = record.read_text()
        for folder_name in (original_folder, original_artifacts, folder, artifacts, tmp_path):
            assert str(folder_name) not in text, f"{record} holds the path {folder_name}"


def test_each_image_is_hashed_once_and_again_only_when_it_changes(embedded, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The content key reads each image once: later keys in the process check sizes and times only, and a new
    process reads the digests remembered beside the cache; a rewritten image alone is read again."""
    folder, artifacts = copy_of(embedded, tmp_path)
    cfg = config(folder, artifacts)
    read: list[str] = []
    real_digest = data.store.file_digest
    monkeypatch.setattr(data.store, "file_digest", lambda path: read.append(Path(path).name) or real_digest(path))
    pipeline._CONTENT.clear()
    pipeline._load_dataset.cache_clear()
    shutil.rmtree(artifacts / "file-digests", ignore_errors=True)
    first = pipeline.dataset_key(cfg)
    images = list(data.load_dataset("folder", folder).paths)  # flat: each path is the file's name
    assert sorted(n for n in read if n in images) == sorted(images), "every image read once"
    read.clear()
    for _ in range(3):
        assert pipeline.dataset_key(cfg) == first
    assert read == [], "the same process: no image read again"
    pipeline._CONTENT.clear()
    pipeline._load_dataset.cache_clear()  # as a new process
    assert pipeline.dataset_key(cfg) == first
    assert not set(read) & set(images), "a new process: the remembered digests, no image read"
    changed = folder / images[0]
    changed.write_bytes(changed.read_bytes() + b"\0")
    read.clear()
    assert pipeline.dataset_key(cfg) != first
    assert [n for n in read if n in images] == [images[0]], "only the rewritten image is read again"


def test_the_face_models_files_are_in_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mifgsm_lib.faces.dlib_resnet import DLIB_RESNET_FILE, dlib_model_file

    shipped = dlib_model_file(DLIB_RESNET_FILE)
    default = pipeline.model_key(RunConfig(profile="quick", device="cpu"))
    assert default["weights"] == data.file_digest(shipped) and default["landmarks"]
    copy = tmp_path / "weights.dat"
    shutil.copy(shipped, copy)
    named = pipeline.model_key(RunConfig(profile="quick", device="cpu", weights=str(copy)))
    assert named == default, "the same weights under another path: the same key"
    with open(copy, "ab") as handle:
        handle.write(b"\0")  # another version of the weights
    assert pipeline.model_key(RunConfig(profile="quick", device="cpu", weights=str(copy)))["weights"] != \
        default["weights"]
    # a new version of the landmark predictor (an upgraded face_recognition_models) changes the key too
    landmarks = faces.preprocessing("dlib")["landmarks"]
    upgraded = tmp_path / "landmarks.dat"
    shutil.copy(pipeline.dlib_model_file(landmarks), upgraded)
    with open(upgraded, "ab") as handle:
        handle.write(b"\0")
    real = pipeline.dlib_model_file
    monkeypatch.setattr(pipeline, "dlib_model_file", lambda name: upgraded if name == landmarks else real(name))
    after = pipeline.model_key(RunConfig(profile="quick", device="cpu"))
    assert after["landmarks"] != default["landmarks"] and after["weights"] == default["weights"]
