"""The one list of privacy methods: every attack on the images, iterative protection and template baseline.

Each :class:`Method` carries what every other part of the library needs to know about it: its name (CLI, cache
keys, tables), its label and plot style, its kind, how much an attacker must know of the classifier, whether
it is one of the paper's, how to build it for a run and how many face-model gradients it costs per image. The
CLI's choices, the sweeps' default attacks, every figure's styles and the trade-off frontier read
:data:`METHODS`; nothing else lists methods.

A new one-step attack is a :class:`~mifgsm_lib.attacks.SignAttack` subclass plus one :func:`register` call.

Kinds:

- ``reference``: the clean images and templates (no privacy);
- ``one-step``: x* = clip(x + ε·d), one direction per image for every ε (the paper's Eqs. 1-4);
- ``iterative``: several steps inside the L∞ ball of radius ε (MI-PGD and Erasure-PGD, beyond the paper);
  ``per_step`` face-model gradients each (Erasure-PGD (EOT): one per processing it expects);
- ``template``: a transformer of the templates, trained on another dataset (IVE, Multi-IVE; Sec. 6.3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from mifgsm_lib import attacks, robustness
from mifgsm_lib.baselines import IVE, MultiIVE
from mifgsm_lib.classifiers import MLPGenderClassifier
from mifgsm_lib.erasure import LinearEraser
from mifgsm_lib.faces.models import FaceModel
from mifgsm_lib.mi import VCLUB
from mifgsm_lib.validation import check_distinct, check_positive_int

KINDS = ("reference", "one-step", "iterative", "template")


class Resources(Protocol):
    """What a method is built from in one run (:class:`mifgsm_lib.pipeline.Resources` gives the cached ones):
    the face model, the MLP classifier of Sec. 3.1 and the vCLUB estimators of the protected attribute."""

    seed: int

    def face_model(self) -> FaceModel: ...

    def mlp(self) -> MLPGenderClassifier: ...

    def vclub(self, features: str) -> VCLUB: ...

    def eraser(self) -> LinearEraser: ...


@dataclass(frozen=True)
class Method:
    """One privacy method (see the module's text).

    ``build``: for ``one-step``, ``build(resources)`` returns a :class:`~mifgsm_lib.attacks.SignAttack`; for
    ``iterative``, ``build(resources, eps, steps)`` an :class:`~mifgsm_lib.attacks.MIPGD` or
    :class:`~mifgsm_lib.attacks.ErasurePGD`; for ``template``,
    ``build(**parameters)`` an unfitted scikit-learn transformer. ``access``: what the attacker must know of the
    gender classifier: ``black box`` (nothing: the vCLUB estimate of the face templates), ``white box`` (the MLP's
    weights) or ``none``. ``per_step``: face-model gradients per step of an iterative method.
    """

    name: str
    label: str
    kind: str
    colour: str
    marker: str
    access: str = "none"
    paper: bool = False
    build: Callable[..., Any] | None = None
    gradient: bool = True
    per_step: int = 1

    def gradients(self, steps: int = 1) -> int:
        """Face-model gradients per image: one per one-step gradient attack, ``per_step`` per step for an
        iterative one (several for an expectation over processings)."""
        if self.kind == "one-step":
            return int(self.gradient)
        return self.per_step * check_positive_int(steps, "steps") if self.kind == "iterative" else 0

    @property
    def style(self) -> tuple[str, str]:
        """(colour, marker) of the method in every figure."""
        return self.colour, self.marker


#: Every method, by name, in the order tables and legends show them.
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (a clear error for a name taken or an unknown kind)."""
    if method.kind not in KINDS:
        raise ValueError(f"kind={method.kind!r}: expected one of {KINDS}")
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered already")
    METHODS[method.name] = method
    return method


@contextmanager
def registered(method: Method) -> Iterator[Method]:
    """``method`` registered for the duration of a ``with`` block (for experiments and tests)."""
    register(method)
    try:
        yield method
    finally:
        METHODS.pop(method.name, None)


def get(name: str) -> Method:
    """The method ``name``; a clear error naming the registered ones."""
    if name not in METHODS:
        raise ValueError(f"method={name!r}: expected one of {list(METHODS)}")
    return METHODS[name]


def names(kind: str | None = None, paper: bool | None = None) -> list[str]:
    """The names of the registered methods of ``kind`` (all kinds: None), the paper's only with ``paper=True``."""
    return [m.name for m in METHODS.values()
            if (kind is None or m.kind == kind) and (paper is None or m.paper == paper)]


def one_step_or_all(chosen: Sequence[str] | None) -> list[str]:
    """The one-step attacks ``chosen`` (checked), or every registered one where it is None."""
    return names("one-step") if chosen is None else check_methods(chosen, "one-step", "attacks")


def label(name: str) -> str:
    """How the book names a method (the name itself for one not registered, e.g. ``clean``)."""
    return METHODS[name].label if name in METHODS else name


def budget(grey_levels: float) -> str:
    """A pixel budget in words: ``1 grey level``, ``0.5 grey levels``, ``2 grey levels``."""
    return f"{grey_levels:g} grey {'level' if grey_levels == 1 else 'levels'}"


def style_of(name: str) -> tuple[str, str]:
    """(colour, marker) of a method; black dots for one not registered (e.g. ``clean``)."""
    return METHODS[name].style if name in METHODS else ("black", ".")


def check_methods(methods: Sequence[str], kind: str | tuple[str, ...], name: str = "methods") -> list[str]:
    """``methods``: distinct registered names of ``kind`` (one kind or several)."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    values = check_distinct(methods, name)
    wrong = [m for m in values if m not in METHODS or METHODS[m].kind not in kinds]
    if wrong:
        raise ValueError(f"{name}: {wrong} are not methods of kind {'/'.join(kinds)}; expected names from "
                         f"{[n for k in kinds for n in names(k)]}")
    return values


def _pgd(objective: str, reestimate: bool) -> Callable[[Resources, float, int], attacks.MIPGD]:
    """MI-PGD with ``objective``, re-estimating q between steps or not, at ε with α = :func:`step_size`."""
    def build(resources: Resources, eps: float, steps: int) -> attacks.MIPGD:
        return attacks.MIPGD(resources.face_model(), resources.vclub("face"), eps=eps, alpha=step_size(eps, steps),
                             steps=steps, objective=objective, reestimate=reestimate)
    return build


def _erasure_pgd(expect: Sequence[str] = ()) -> Callable[[Resources, float, int], attacks.ErasurePGD]:
    """PGD towards the LEACE-erased template at ε, with α = :func:`step_size`, over the photo as stored and the
    processings ``expect`` (names of :data:`mifgsm_lib.robustness.TRANSFORMS`)."""
    def build(resources: Resources, eps: float, steps: int) -> attacks.ErasurePGD:
        return attacks.ErasurePGD(resources.face_model(), resources.eraser(), eps=eps, alpha=step_size(eps, steps),
                                  steps=steps, expect=[robustness.differentiable(n) for n in expect])
    return build


def step_size(eps: float, steps: int) -> float:
    """MI-PGD's α: 2.5 ε / steps (Madry et al.'s rule), at most ε (so one step is MI-FGSM)."""
    check_positive_int(steps, "steps")
    return min(attacks.check_eps(eps), 2.5 * eps / steps)


for _method in (
    Method("reference", "Reference (no privacy)", "reference", "black", "*"),
    Method("mi-fgsm", "MI-FGSM", "one-step", "tab:red", "o", access="black box", paper=True,
           build=lambda r: attacks.MIFGSM(r.face_model(), r.vclub("face"))),
    Method("mi-fgsm-mlp", "MI-FGSM-MLP", "one-step", "tab:orange", "s", access="white box", paper=True,
           build=lambda r: attacks.MIFGSMMLP(r.face_model(), r.mlp(), r.vclub("mlp"))),
    Method("fgsm", "FGSM", "one-step", "tab:purple", "^", access="white box", paper=True,
           build=lambda r: attacks.FGSM(r.face_model(), r.mlp())),
    Method("random", "RNDATK", "one-step", "tab:grey", "v", paper=True, gradient=False,
           build=lambda r: attacks.RandomSign(seed=r.seed)),
    Method("mi-pgd", "MI-PGD (vCLUB)", "iterative", "tab:blue", "s", access="black box", build=_pgd("vclub", False)),
    Method("mi-pgd-confusion", "MI-PGD (confusion)", "iterative", "tab:green", "^", access="black box",
           build=_pgd("confusion", False)),
    Method("mi-pgd-aware", "MI-PGD (confusion, attacker-aware)", "iterative", "tab:brown", "D", access="black box",
           build=_pgd("confusion", True)),
    Method("erasure-pgd", "Erasure-PGD (LEACE target)", "iterative", "tab:pink", "X", access="black box",
           build=_erasure_pgd()),
    Method("erasure-pgd-eot", "Erasure-PGD (EOT)", "iterative", "darkred", "h", access="black box",
           build=_erasure_pgd(robustness.EXPECTED), per_step=1 + len(robustness.EXPECTED)),
    Method("ive", "IVE", "template", "tab:cyan", "D", paper=True, build=IVE),
    Method("multi-ive", "Multi-IVE", "template", "tab:olive", "P", paper=True,
           build=lambda **kw: MultiIVE(domain="pca", **kw)),
):
    register(_method)
