"""The paper's own numbers, quoted once (Rezgui, Strisciuglio, Veldhuis, WACVW 2024).

Every chapter that sets our measurements beside the paper's reads them from here, so that no number of the
paper is typed twice. Accuracies and error rates are fractions unless a name says percent.
"""

from __future__ import annotations

import pandas as pd

#: Table 2's rows.
TABLE2_ROWS = ("Reference (no privacy)", "MI-FGSM", "IVE", "Multi-IVE")

#: Table 2 (IResNet50-ArcFace; gender = setting-B balanced accuracy, %; EER, %).
TABLE2 = pd.DataFrame(
    {
        ("paper: LFW", "Gender (%)"): [84.96, 75.93, 75.32, 75.62],
        ("paper: LFW", "EER (%)"): [0.483, 0.616, 1.56, 2.92],
        ("paper: AgeDB", "Gender (%)"): [93.36, 87.02, 89.92, 87.42],
        ("paper: AgeDB", "EER (%)"): [5.076, 6.003, 10.88, 10.91],
        ("paper: ColorFERET", "Gender (%)"): [94.60, 76.46, 85.14, 75.22],
        ("paper: ColorFERET", "EER (%)"): [0.822, 1.173, 1.67, 3.07],
    },
    index=list(TABLE2_ROWS),
)

#: LFW's clean templates in Table 2: setting B (balanced accuracy) and EER, as fractions.
LFW_REFERENCE = {"setting_b": TABLE2.loc["Reference (no privacy)", ("paper: LFW", "Gender (%)")] / 100,
                 "eer": TABLE2.loc["Reference (no privacy)", ("paper: LFW", "EER (%)")] / 100}

#: Sec. 6.2.2: the lowest setting-B accuracies in the sensitive range, MI-FGSM against FGSM (percent).
LOWEST_SETTING_B = {"LFW": {"mi-fgsm": 75, "fgsm": 82}, "ColorFERET": {"mi-fgsm": 75, "fgsm": 79}}

#: Sec. 4.2 and Sec. 6.2.2: the sweeps' subset and the sensitive range's steps.
SUBSET_SIZE = 5000
SENSITIVE_STEPS = 50
#: Sec. 6.1: the estimator's training iterations and Fig. 2's checkpoints.
ESTIMATOR_ITERATIONS = 15000
ESTIMATOR_CHECKPOINTS = (5000, 15000, 23700)
#: Sec. 6.2.3 (Fig. 5): the clean fractions it quotes, which imply steps of 1/8.
MIXING_QUOTED_FRACTIONS = (0.375, 0.5)
#: Sec. 5: setting B's cross-validation folds; Sec. 6.3: the LFW verification protocol's pairs.
CV_FOLDS = 3
VERIFICATION_PAIRS = 6000
#: Sec. 6: the datasets as the paper uses them, whole (images; LFW's people).
DATASET_IMAGES = {"LFW": 13233, "AgeDB": 16516, "ColorFERET": 11338}
LFW_PEOPLE = 5749

#: Published figures of other works that the chapters quote: dlib's 10-fold LFW accuracy of its ResNet
#: (``dlib_face_recognition_resnet_model_v1``, on full-size LFW images).
DLIB_PUBLISHED_LFW_ACCURACY = 0.9938


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def quotes() -> dict[str, str]:
    """The numbers above as the chapters' prose quotes them, by name: each chapter glues them
    (:func:`mifgsm_lib.page.header`) and its text reads ``{glue:text}`paper_<name>```, so that no number of the
    paper is typed in a chapter."""
    return {
        "subset_size": f"{SUBSET_SIZE:,}",
        "sensitive_steps": f"{SENSITIVE_STEPS}",
        "estimator_iterations": f"{ESTIMATOR_ITERATIONS:,}",
        "estimator_checkpoints": _listed([f"{c:,}" for c in ESTIMATOR_CHECKPOINTS]),
        "mixing_fractions": _listed([f"{100 * f:g} %" for f in MIXING_QUOTED_FRACTIONS]),
        "verification_pairs": f"{VERIFICATION_PAIRS:,}",
        "lfw_images": f"{DATASET_IMAGES['LFW']:,}",
        "lfw_people": f"{LFW_PEOPLE:,}",
        "dataset_images": ", ".join(f"{name} {n:,}" for name, n in DATASET_IMAGES.items()),
        "dlib_lfw_accuracy": f"{DLIB_PUBLISHED_LFW_ACCURACY:.2%}",
    }
