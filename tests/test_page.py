"""The chapters' presentation helpers: tables a reader compares, budgets in words."""

from __future__ import annotations

import pandas as pd

from mifgsm_lib import methods, page


def test_a_table_shows_the_papers_names_percentages_and_short_row_labels() -> None:
    frame = pd.DataFrame({"setting_b": [0.5, 0.625], "tar_at_far": [0.9, 0.8], "eer": [0.01, 0.02]},
                         index=pd.MultiIndex.from_tuples([("MI-FGSM", 1.0), ("MI-PGD", 0.5)],
                                                         names=["method", "grey_levels"]))
    html = page.table(frame, "A caption.", percent=["setting_b"]).to_html()
    for text in (">setting B<", ">TAR at FAR<", ">EER<", ">grey levels<", ">62.5%<", ">0.5<", ">1<", "A caption."):
        assert text in html, text
    assert "1.000000" not in html and "setting_b" not in html
    assert frame.index.names == ["method", "grey_levels"]  # the caller's frame is left as it was


def test_a_budget_in_words() -> None:
    assert methods.budget(1) == "1 grey level"
    assert methods.budget(2.0) == "2 grey levels"
    assert methods.budget(0.5) == "0.5 grey levels"


def test_setting_b_plus_and_its_gains_read_as_the_book_names_them_and_methods_by_their_labels() -> None:
    frame = pd.DataFrame({"method": ["mi-fgsm", "multi-ive", "clean"], "setting_b_plus": [0.9, 0.8, 0.7],
                          "setting_b_plus_best": [0.95, 0.85, 0.75], "gain_b_plus_low": [0.01, 0.02, 0.0]})
    html = page.table(frame, "B+.", percent=list(frame.columns[1:]), index=False).to_html()
    for text in (">setting B+<", ">setting B+ best<", ">gain B+ low<", ">MI-FGSM<", ">Multi-IVE<", ">clean<"):
        assert text in html, text
    assert ">mi-fgsm<" not in html


def test_methods_in_the_index_are_shown_by_their_labels_too() -> None:
    single = pd.DataFrame({"eps_star": [0.002, 0.003]}, index=pd.Index(["mi-fgsm", "fgsm"], name="method"))
    html = page.table(single, "ε* per attack.").to_html()
    assert ">MI-FGSM<" in html and ">FGSM<" in html and ">mi-fgsm<" not in html
    nested = pd.DataFrame({"setting_b": [0.9, 0.8]},
                          index=pd.MultiIndex.from_tuples([(0.5, "mi-fgsm-mlp"), (1.0, "random")],
                                                          names=["eps", "method"]))
    html = page.table(nested, "By ε.", percent=["setting_b"]).to_html()
    assert ">MI-FGSM-MLP<" in html and ">RNDATK<" in html and ">0.5<" in html and ">random<" not in html
