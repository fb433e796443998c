"""The papermill path on a user's own data: the chapters run, quick profile, on a ``folder`` dataset built from
the mirror's LFW images with a ``labels.csv`` (the page "Your own data and face model"), as ``mifgsm book`` runs
them.

Two folders:

* **with identities**: 220 images of 100 people (30 men and 30 women with 3 images each, 20 men and 20 women with
  one), one image of unknown gender. The whole book runs; verification pairs are drawn by the LFW protocol from the
  people (``data.lfw_protocol_pairs``), so every section runs.
* **without identities** (no ``identity`` column): no pairs, no grouped folds. The whole book runs; the chapters
  with a section that needs them (templates, evaluation settings, trade-off, beyond) say what they skip.

UTKFace (the second dataset, IVE's training set, the attribute dataset) comes from the mirror; its results come
from the cache of the chapters' run when ``MIFGSM_ARTIFACTS`` is shared (``scripts/test.sh`` runs the chapters
first), since cache keys hold content, not folders. Cost on the 2-core machine: measured in the module's
docstring of the last run, see ``--durations``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mifgsm_lib import book

pytestmark = pytest.mark.slow

#: People with this many images, per gender, and people with one image, per gender.
MULTI, PER_PERSON, SINGLE = 30, 3, 20
#: The chapters with a section that needs identities (pairs, grouped folds): without them, they say what they skip.
WITHOUT_IDENTITIES = ["book/templates", "book/evaluation_settings", "book/tradeoff", "book/beyond"]
#: The book's root chapter, which every run of ``mifgsm book`` includes.
ROOT_CHAPTER = "book/intro"


def _gender_lists(mirror: Path) -> dict[str, str]:
    """Image file name -> ``m`` / ``f`` from the mirror's LFW lists (a name in both lists is left out)."""
    found: dict[str, set[str]] = {}
    for gender, name in (("m", "male_names.txt"), ("f", "female_names.txt")):
        for line in (mirror / "lfw" / name).read_text(encoding="latin-1").splitlines():
            if line.strip():
                found.setdefault(line.strip(), set()).add(gender)
    return {name: genders.pop() for name, genders in found.items() if len(genders) == 1}


def _people(mirror: Path) -> list[tuple[str, str, list[Path]]]:
    """(person, gender, images) for the chosen people, in name order: deterministic."""
    gender_of = _gender_lists(mirror)
    chosen: list[tuple[str, str, list[Path]]] = []
    want = {("m", True): MULTI, ("f", True): MULTI, ("m", False): SINGLE, ("f", False): SINGLE}
    for folder in sorted((mirror / "lfw" / "lfw").iterdir()):
        images = sorted(folder.glob("*.jpg"))
        genders = {gender_of.get(p.name) for p in images}
        if len(genders) != 1 or None in genders:
            continue
        gender, multi = genders.pop(), len(images) >= PER_PERSON
        if len(images) > 1 and not multi:
            continue
        if want[gender, multi] > 0:
            want[gender, multi] -= 1
            chosen.append((folder.name, gender, images[:PER_PERSON] if multi else images[:1]))
        if not any(want.values()):
            return chosen
    raise AssertionError(f"the mirror has too few people for the own-data folder; still wanted {want}")


def make_faces(mirror: Path, root: Path, identities: bool) -> Path:
    """A ``folder`` dataset of the chosen people's images: ``<person>/<image>`` and a labels.csv; the first
    single image's gender is left empty (unknown)."""
    lines = ["path,gender,identity" if identities else "path,gender"]
    unknown_left = True
    for person, gender, images in _people(mirror):
        (root / person).mkdir(parents=True, exist_ok=True)
        for image in images:
            shutil.copy2(image, root / person / image.name)
            shown = gender
            if unknown_left and len(images) == 1:
                shown, unknown_left = "", False
            lines.append(f"{person}/{image.name},{shown}" + (f",{person}" if identities else ""))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def run_book(faces: Path, out: Path, chapters: list[str], *parameters: str) -> dict:
    """``mifgsm book -p ...`` (papermill's convention) on ``faces``, quick profile, no HTML, with the further
    ``NAME=VALUE`` ``parameters``; its ``--json`` result."""
    env = {**os.environ, "MIFGSM_PROFILE": "quick"}
    more = [arg for p in parameters for arg in ("-p", p)]
    done = subprocess.run(
        [sys.executable, "-m", "mifgsm_lib.cli", "book", "-p", "dataset=folder", "-p", f"data_dir={faces}",
         "-p", "profile=quick", *more, "--out", str(out), "--no-build", "--json", "--chapters", *chapters],
        capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, f"mifgsm book failed ({done.returncode}):\n{done.stderr[-6000:]}"
    return json.loads(done.stdout)


def executed(out: Path, chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(out / "_build" / "executed" / f"{chapter}.ipynb", as_version=4)


def text_of(notebook: nbformat.NotebookNode) -> str:
    """Every text and Markdown output of a notebook, joined."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{output.get('ename')}: {output.get('evalue')}"
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/markdown", "")))
    return "\n".join(parts)


ROOT = Path(__file__).resolve().parent.parent
#: What a chapter shows where it skips a section (:func:`mifgsm_lib.page.skip`).
SKIPPED = "**Skipped:**"


def test_the_whole_book_runs_on_a_folder_with_identities(mirror: Path, tmp_path: Path) -> None:
    faces = make_faces(mirror, tmp_path / "faces", identities=True)
    every = book.toc_chapters(ROOT)
    run_book(faces, tmp_path / "book", every)
    for chapter in every:
        text = text_of(executed(tmp_path / "book", chapter))
        assert "profile 'quick'" in text, chapter  # the setup cell ran
        assert SKIPPED not in text, chapter  # identities give pairs: no section is skipped
    assert "folder" in text_of(executed(tmp_path / "book", "book/templates"))


def test_the_whole_book_runs_without_identities_and_says_what_it_skips(mirror: Path, tmp_path: Path) -> None:
    faces = make_faces(mirror, tmp_path / "faces", identities=False)
    every = book.toc_chapters(ROOT)
    run_book(faces, tmp_path / "book", every)
    for chapter in every:
        text = text_of(executed(tmp_path / "book", chapter))  # no cell raised
        assert (SKIPPED in text) == (chapter in WITHOUT_IDENTITIES), chapter


def test_face_templates_runs_with_the_iresnet50_and_a_users_weights(mirror: Path, tmp_path: Path) -> None:
    """``model=iresnet50`` with a ``backbone.pth`` of the user's (here: an untrained network's weights, saved as
    arcface_torch saves them): "Face templates" runs, describes that model and says the dlib comparison is skipped."""
    import torch

    from mifgsm_lib.faces.iresnet import iresnet50

    faces = make_faces(mirror, tmp_path / "faces", identities=True)
    torch.manual_seed(0)
    weights = tmp_path / "backbone.pth"
    torch.save(iresnet50().state_dict(), weights)
    run_book(faces, tmp_path / "book", [ROOT_CHAPTER, "book/templates"], "model=iresnet50",
             f"weights={weights}", "second_dataset=folder")
    text = text_of(executed(tmp_path / "book", "book/templates"))
    assert "Skipped: `model='iresnet50'` is not dlib's network." in text
    assert "iresnet50" in text and "profile 'quick'" in text
