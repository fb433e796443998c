"""mifgsm_lib: MI-FGSM and friends (Rezgui, Strisciuglio, Veldhuis, WACVW 2024).

One module per idea of the paper:

- :mod:`mifgsm_lib.data`          datasets (LFW, pairs.txt, UTKFace, AgeDB, ColorFERET, folder+CSV)
- :mod:`mifgsm_lib.faces.models`   face-recognition networks (dlib ResNet port, IResNet50-ArcFace)
- :mod:`mifgsm_lib.faces.alignment`     dlib's detector, 5-point landmarks and face chips
- :mod:`mifgsm_lib.mi`            the vCLUB estimator (Sec. 4.1, Eqs. 5-7)
- :mod:`mifgsm_lib.classifiers`   the MLP gender classifier (Sec. 3.1)
- :mod:`mifgsm_lib.attacks`       MI-FGSM, MI-FGSM-MLP, FGSM, RNDATK (Eqs. 1-4)
- :mod:`mifgsm_lib.evaluation`    settings A and B (Sec. 5), image quality
- :mod:`mifgsm_lib.verification`  EER, ROC, 10-fold accuracy on pairs
- :mod:`mifgsm_lib.baselines`     IVE and Multi-IVE (Sec. 6.3)
"""

__version__ = "0.1.0"
