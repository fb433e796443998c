"""A wrong library turns its chapter red: a function broken on purpose (in the chapter's kernel only, through a
``sitecustomize`` on its path) makes the chapter's checks fail, so CI cannot stay green on a wrong result."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Eq. 7's bracket with its sign flipped (CLUB theory), and the closed-form gradient of Eq. 7 with its sign flipped
#: (Beyond one step).
BREAKS = {
    "club_theory": ("import mifgsm_lib.mi as mi\n"
                    "_terms = mi.vclub_terms\n"
                    "mi.vclub_terms = lambda log_probs, y, prior: -_terms(log_probs, y, prior)\n",
                    "Eq. 7 of mifgsm_lib.mi.VCLUB equals its double sum written out"),
    "beyond": ("import mifgsm_lib.mi as mi\n"
               "_closed = mi.vclub_template_gradient_closed_form\n"
               "mi.vclub_template_gradient_closed_form = lambda q, z, y: -_closed(q, z, y)\n",
               "the closed-form gradient of Eq. 7 equals autograd"),
}


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(BREAKS))
def test_a_broken_function_fails_its_chapter(chapter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill as pm

    patch, statement = BREAKS[chapter]
    (tmp_path / "sitecustomize.py").write_text(patch)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MIFGSM_PROFILE", "quick")
    with pytest.raises(pm.PapermillExecutionError) as failure:
        pm.execute_notebook(str(ROOT / "book" / f"{chapter}.ipynb"), str(tmp_path / "out.ipynb"),
                            cwd=str(ROOT / "book"), progress_bar=False, kernel_name="python3")
    assert "chapter checks failed" in str(failure.value) and statement in str(failure.value)
