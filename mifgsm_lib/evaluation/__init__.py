"""Evaluation: the paper's settings A and B (:mod:`.settings`), one way to measure a family of protected template
sets with intervals (:mod:`.measure`), and the stronger adversary of setting B+ (:mod:`.adversary`)."""

from mifgsm_lib.evaluation.adversary import STRONGER_CLASSIFIERS, measure_plus, setting_b_plus
from mifgsm_lib.evaluation.measure import (
    METRICS,
    REFERENCE,
    EvaluationSet,
    SetKey,
    measure,
    paired_difference,
)
from mifgsm_lib.evaluation.settings import (
    CLASSIFIERS,
    MIXING_FRACTIONS,
    SettingBResult,
    fold_splits,
    mixed_templates,
    mixing,
    setting_a,
    setting_a_predictions,
    setting_b,
    setting_b_classifier,
    setting_b_sweep,
)

__all__ = ["STRONGER_CLASSIFIERS", "measure_plus", "setting_b_plus", "CLASSIFIERS", "METRICS", "MIXING_FRACTIONS", "REFERENCE", "EvaluationSet", "SetKey", "SettingBResult",
           "fold_splits", "measure", "mixed_templates", "mixing", "paired_difference", "setting_a",
           "setting_a_predictions", "setting_b", "setting_b_classifier", "setting_b_sweep"]
