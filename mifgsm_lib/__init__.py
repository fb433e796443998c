"""mifgsm_lib: MI-FGSM and friends (Rezgui, Strisciuglio, Veldhuis, WACVW 2024).

The package follows the paper's pipeline, one home per idea (the README's "Layout" lists every module):

- :mod:`mifgsm_lib.config`, :mod:`~mifgsm_lib.validation`: the profiles' sizes and ε grids; checks of user input
- :mod:`mifgsm_lib.data`: datasets (LFW and pairs.txt, UTKFace, AgeDB, ColorFERET, a folder with a CSV), fetching
- :mod:`mifgsm_lib.faces`: alignment and the face-recognition networks (dlib ResNet port, IResNet50-ArcFace)
- :mod:`mifgsm_lib.mi`, :mod:`~mifgsm_lib.classifiers`: the vCLUB estimator (Sec. 4.1, Eqs. 5-7), the MLP (Sec. 3.1)
- :mod:`mifgsm_lib.attacks`, :mod:`~mifgsm_lib.methods`, :mod:`~mifgsm_lib.protect`: MI-FGSM, MI-FGSM-MLP, FGSM,
  RNDATK (Eqs. 1-4) and MI-PGD, the one registry of methods, the one protect-and-embed loop
- :mod:`mifgsm_lib.evaluation`, :mod:`~mifgsm_lib.verification`, :mod:`~mifgsm_lib.baselines`: settings A, B
  (Sec. 5) and B+, EER on pairs, IVE and Multi-IVE (Sec. 6.3)
- :mod:`mifgsm_lib.pipeline`, :mod:`~mifgsm_lib.studies`, :mod:`~mifgsm_lib.figures`: cached steps, one study and
  one figure module per chapter
"""

__version__ = "0.2.0"
