"""Run configuration shared by the chapters and the CLI: profiles (every size), ε grids, devices, seeds, paths."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mifgsm_lib.validation import check_eps

#: The iterative protections of the chapter "Beyond one step" (:mod:`mifgsm_lib.methods`).
_PGD = ("mi-pgd", "mi-pgd-confusion", "mi-pgd-aware", "erasure-pgd", "erasure-pgd-eot")
#: The synthetic experiments of the chapter "CLUB theory" at full size (the default and paper profiles).
_CLUB_THEORY_FULL = {"dim": 4, "n_train": 10_000, "n_val": 10_000, "iterations": 5000, "eval_every": 25,
                     "mc_samples": 1_000_000, "early_seeds": 20, "early_iterations": 60, "pool": 200_000,
                     "repeats": 1000}

#: Every size of every chapter, per profile: ``quick`` is what CI runs on every chapter, ``default`` the README's
#: main job on a CPU, ``paper`` the paper's full sizes (GPU advised). One home: the chapters and the library read
#: them from here (``cfg.sizes``).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "subset_size": 400,          # gender-balanced subset for the sweeps (paper: 5,000)
        "estimator_iterations": 1500,  # vCLUB training iterations (paper: 15,000)
        "estimator_checkpoints": (300, 1000, 1500),  # Fig. 2 (paper: 5,000 / 15,000 / 23,700)
        "sensitive_steps": 4,        # Fig. 4 (paper: 50)
        "fine_steps": 4,             # the finer grid below the sensitive range (beyond the paper)
        "fig2_grids": ("fine",),     # Fig. 2's ε grids (the paper: the default range)
        "cv_folds": 3,
        "tsne_points": 300,
        "verification_folds": (4, 9),  # the pairs' folds attacked for the EER (LFW's folds 4 and 9 hold images of
                                       # unknown gender); Table 2 chooses on fold 4 and reports on fold 9
        "max_images": {"utkface": 1500},  # a seeded random sample of these datasets
        "tradeoff_eps": (0.001, 0.002, 0.003, 0.005, 0.01),  # the trade-off frontier's ε
        "frontier_attacks": ("mi-fgsm",),  # the attacks on the frontier and in the ε-EER sweep (Table 2: MI-FGSM)
        "club_theory": {"dim": 4, "n_train": 2000, "n_val": 2000, "iterations": 600, "eval_every": 10,
                        "mc_samples": 100_000, "early_seeds": 6, "early_iterations": 40, "pool": 20_000,
                        "repeats": 200},
        "beyond": {"folds": (4,), "pgd_steps": 3, "one_step_budgets": (1, 2), "pgd_budgets": (2,),
                   "extra_budgets": {"erasure-pgd": (1,)},  # default's 4 grey levels left out: CI's time
                   "robustness_methods": ("mi-fgsm", "mi-pgd-confusion", "erasure-pgd", "erasure-pgd-eot"),
                   "attribute_protections": (("mi-fgsm", 1), ("mi-fgsm", 2), ("mi-pgd-confusion", 2)),
                   "attribute_images": 400},
    },
    "default": {
        "subset_size": 2000,
        "estimator_iterations": 15000,
        "estimator_checkpoints": (5000, 15000, 23700),
        "sensitive_steps": 10,
        "fine_steps": 5,             # 0.001 ... 0.005: the trade-off grid's low end, shared with it
        "fig2_grids": ("fine", "default"),
        "cv_folds": 3,
        "tsne_points": 1500,
        "verification_folds": tuple(range(10)),
        "max_images": {"utkface": 5000},  # the baselines' training set and the other attributes (beyond the paper)
        "tradeoff_eps": (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02),
        "frontier_attacks": ("mi-fgsm",),
        "club_theory": _CLUB_THEORY_FULL,
        "beyond": {"folds": (4,), "pgd_steps": 5, "one_step_budgets": (1, 2), "pgd_budgets": (2,),
                   "extra_budgets": {"erasure-pgd": (1, 4), "erasure-pgd-eot": (1, 4)},
                   "robustness_methods": ("mi-fgsm", "mi-pgd-confusion", "erasure-pgd", "erasure-pgd-eot"),
                   "attribute_protections": (("mi-fgsm", 1), ("mi-fgsm", 2), ("mi-pgd-confusion", 2)),
                   "attribute_images": 400},
    },
    "paper": {
        "subset_size": 5000,
        "estimator_iterations": 15000,
        "estimator_checkpoints": (5000, 15000, 23700),
        "sensitive_steps": 50,
        "fine_steps": 50,
        "fig2_grids": ("fine", "default"),
        "cv_folds": 3,
        "tsne_points": 5000,
        "verification_folds": tuple(range(10)),
        "max_images": {},
        "tradeoff_eps": (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02),
        "frontier_attacks": None,  # every one-step attack of mifgsm_lib.methods
        "club_theory": _CLUB_THEORY_FULL,
        "beyond": {"folds": None, "pgd_steps": 10, "one_step_budgets": (1, 2), "pgd_budgets": (1, 2),
                   "extra_budgets": {"erasure-pgd": (1, 4), "erasure-pgd-eot": (1, 4)},
                   "robustness_methods": ("mi-fgsm", *_PGD),
                   "attribute_protections": (("mi-fgsm", 1), ("mi-fgsm", 2), ("mi-pgd-confusion", 1),
                                             ("mi-pgd-confusion", 2), ("mi-pgd-aware", 2)),
                   "attribute_images": None},
    },
}

#: One grey level of an 8-bit image on the [0, 1] pixel scale.
GREY_LEVEL = 1.0 / 255.0
#: The top of the paper's sensitive range (Sec. 6.2.2).
SENSITIVE_MAX_EPS = 0.03
#: The top of the finer low-ε grid (beyond the paper): with the dlib model, setting B dips below its clean value
#: only for ε below about 0.005 (1.3 grey levels), which a sensitive grid of few steps up to 0.03 does not resolve.
FINE_MAX_EPS = 0.005


def grey_eps(grey_levels: float) -> float:
    """ε on the [0, 1] pixel scale of a budget in grey levels (1 grey level = 1/255)."""
    if not 0 < float(grey_levels) <= 255:
        raise ValueError(f"grey_levels={grey_levels!r}: expected a budget in (0, 255] grey levels")
    return float(grey_levels) * GREY_LEVEL


def eps_grid_default() -> list[float]:
    """The paper's default range: ε = 0.05 to 0.3 in steps of 0.05 (Sec. 6.2.1, Fig. 3)."""
    return [round(0.05 * k, 10) for k in range(1, 7)]


def eps_grid_sensitive(n_steps: int, max_eps: float = SENSITIVE_MAX_EPS) -> list[float]:
    """The sensitive range of Sec. 6.2.2 (Fig. 4): ``n_steps`` uniform steps up to ``max_eps``, max_eps·k/n."""
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r}: expected a positive integer (the paper uses 50)")
    if check_eps(max_eps, "max_eps") == 0.0:
        raise ValueError(f"max_eps={max_eps!r}: expected a positive perturbation level")
    return [round(max_eps * k / n_steps, 12) for k in range(1, int(n_steps) + 1)]


def eps_grids(sizes: Mapping[str, Any], fine_max_eps: float | None = None) -> dict[str, list[float]]:
    """The ε grids of the sweeps, by name: ``default`` (the paper's default range, Fig. 3), ``sensitive`` (the
    profile's ``sensitive_steps`` up to 0.03, Fig. 4; the paper uses 50) and, beyond the paper, ``fine`` (the
    profile's ``fine_steps`` up to ``fine_max_eps``, None: :data:`FINE_MAX_EPS`)."""
    fine_max_eps = FINE_MAX_EPS if fine_max_eps is None else fine_max_eps
    if not 0 < check_eps(fine_max_eps, "fine_max_eps") < SENSITIVE_MAX_EPS:
        raise ValueError(f"fine_max_eps={fine_max_eps!r}: expected a level in (0, 0.03), below the sensitive range's "
                         "top")
    return {
        "default": eps_grid_default(),
        "sensitive": eps_grid_sensitive(int(sizes["sensitive_steps"])),
        "fine": eps_grid_sensitive(int(sizes["fine_steps"]), max_eps=fine_max_eps),
    }


def eps_grid_storage(n_levels: int = 10) -> list[float]:
    """The storage check's ε (chapter "Attacks"): ``n_levels`` levels midway between quarter grey levels, 0.125,
    0.375, ... grey levels, so none falls on a rounding boundary of 8-bit storage (half a grey level)."""
    if not isinstance(n_levels, (int, np.integer)) or n_levels < 1:
        raise ValueError(f"n_levels={n_levels!r}: expected a positive integer")
    return [(k + 0.5) * 0.25 / 255 for k in range(int(n_levels))]


#: An ε of the example strip (chapter "Evaluation settings") between ε* and the sensitive range's top.
STRIP_MIDDLE_EPS = 0.01


def eps_strip(eps_star: float, grids: Mapping[str, Sequence[float]]) -> list[float]:
    """The ε of the example strip of one face: ε*, 0.01, the sensitive range's top and the default range's top
    (sorted, each once)."""
    return sorted({float(eps_star), STRIP_MIDDLE_EPS, float(grids["sensitive"][-1]), float(grids["default"][-1])})


def union_eps(grids: Mapping[str, Sequence[float]]) -> list[float]:
    """The sorted union of several grids: one sweep (one cache entry per attack and ε) then serves every figure."""
    values = sorted({round(check_eps(e), 12) for grid in grids.values() for e in grid})
    if not values:
        raise ValueError("grids: expected at least one ε")
    return values


MIRROR_ENV = "MIFGSM_MIRROR"
DATA_ENV = "MIFGSM_DATA"
ARTIFACTS_ENV = "MIFGSM_ARTIFACTS"
PROFILE_ENV = "MIFGSM_PROFILE"


def is_url(location: str) -> bool:
    """Whether ``location`` is an http(s) URL rather than a local path."""
    return str(location).startswith(("http://", "https://"))


def profile_settings(profile: str) -> dict[str, Any]:
    """The sizes of a named profile; a clear error for an unknown name."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: expected one of {sorted(PROFILES)}")
    return dict(PROFILES[profile])


def profile_table() -> pd.DataFrame:
    """The main sizes of every profile side by side, one row per size a reader compares (the chapters' own sizes
    are in each chapter)."""

    def row(p: dict[str, Any]) -> dict[str, Any]:
        folds, beyond = p["verification_folds"], p["beyond"]
        return {
            "sweep subset (images)": f"{p['subset_size']:,}",
            "vCLUB / MLP training iterations": f"{p['estimator_iterations']:,}",
            "Fig. 2 checkpoints": ", ".join(f"{k:,}" for k in p["estimator_checkpoints"]),
            "sensitive-range steps (Fig. 4)": p["sensitive_steps"],
            "setting-B folds": p["cv_folds"],
            "verification pairs (folds)": f"{600 * len(folds):,} ({len(folds)} of 10)",
            "UTKFace images": f"{p['max_images'].get('utkface', 'all')}",
            "trade-off ε values": len(p["tradeoff_eps"]),
            "t-SNE points": f"{p['tsne_points']:,}",
            "CLUB theory iterations": f"{p['club_theory']['iterations']:,}",
            "Beyond: folds of pairs": "all" if beyond["folds"] is None else len(beyond["folds"]),
            "Beyond: PGD steps": beyond["pgd_steps"],
        }

    return pd.DataFrame({name: row(PROFILES[name]) for name in PROFILES})


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to torch. A GPU this machine lacks (cuda,
    cuda:N beyond its devices, mps) is refused here, before any work."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine (use 'auto' or 'cpu')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"numbered from 0 (use 'cuda', 'auto' or 'cpu')")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and (mps is None or not mps.is_available()):
        raise ValueError(f"device={device!r}: MPS (Apple GPU) is not available on this machine (use 'auto' or 'cpu')")
    return dev


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for explicit use."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return np.random.default_rng(int(seed))


def default_data_dir() -> Path:
    """Where datasets live: ``$MIFGSM_DATA`` or ``~/.cache/mifgsm/data``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "mifgsm" / "data")


def default_artifacts_dir() -> Path:
    """Where cached results live: ``$MIFGSM_ARTIFACTS`` or ``~/.cache/mifgsm/artifacts``."""
    return Path(os.environ.get(ARTIFACTS_ENV) or Path.home() / ".cache" / "mifgsm" / "artifacts")


@dataclass
class RunConfig:
    """The parameters every chapter takes (its papermill ``parameters`` cell). ``None`` takes the environment's
    setting: ``profile`` from ``$MIFGSM_PROFILE`` (else ``default``), ``data_dir`` and ``artifacts_dir`` from
    ``$MIFGSM_DATA`` and ``$MIFGSM_ARTIFACTS`` (else folders under ``~/.cache/mifgsm``). ``labels`` is the CSV of
    a ``folder`` dataset (relative to ``data_dir``)."""

    dataset: str = "lfw"
    data_dir: str | None = None
    labels: str = "labels.csv"
    model: str = "dlib"
    weights: str | None = None
    device: str = "auto"
    seed: int = 0
    profile: str | None = None
    artifacts_dir: str | None = None
    sizes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.profile = self.profile or os.environ.get(PROFILE_ENV) or "default"
        self.sizes = {**profile_settings(self.profile), **self.sizes}
        resolve_device(self.device)  # an unusable device is refused before any work
        if self.weights is not None and not is_url(self.weights) and not Path(self.weights).is_file():
            raise FileNotFoundError(f"weights={self.weights!r}: no such weights file (a path or an http(s) URL)")
        seed_everything(self.seed)

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def artifacts_path(self) -> Path:
        return Path(self.artifacts_dir) if self.artifacts_dir else default_artifacts_dir()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (tiny networks train fastest on one), then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
