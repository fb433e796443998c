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
