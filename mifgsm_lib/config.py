"""Run configuration shared by the chapters and the CLI: profiles, devices, seeds, paths."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Sizes per profile. ``quick`` is what CI runs on every chapter, ``default`` the
#: README's main job on a CPU, ``paper`` the paper's full sizes (GPU advised).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "subset_size": 400,          # gender-balanced subset for the sweeps (paper: 5,000)
        "estimator_iterations": 1500,  # vCLUB training iterations (paper: 15,000)
        "estimator_checkpoints": (300, 1000, 1500),  # Fig. 2 (paper: 5,000 / 15,000 / 23,700)
        "sensitive_steps": 4,        # Fig. 4 (paper: 50)
        "fine_steps": 4,             # the finer grid below the sensitive range (beyond the paper)
        "cv_folds": 3,
        "tsne_points": 300,
        "verification_folds": (4,),  # the pairs' folds attacked for the EER (LFW's fold 4 holds an image of unknown gender)
        "max_images": {"utkface": 1500},  # a seeded random sample of these datasets
    },
    "default": {
        "subset_size": 2000,
        "estimator_iterations": 15000,
        "estimator_checkpoints": (5000, 15000, 23700),
        "sensitive_steps": 10,
        "fine_steps": 5,             # 0.001 ... 0.005: the trade-off grid's low end, shared with it
        "cv_folds": 3,
        "tsne_points": 1500,
        "verification_folds": tuple(range(10)),
        "max_images": {},
    },
    "paper": {
        "subset_size": 5000,
        "estimator_iterations": 15000,
        "estimator_checkpoints": (5000, 15000, 23700),
        "sensitive_steps": 50,
        "fine_steps": 50,
        "cv_folds": 3,
        "tsne_points": 5000,
        "verification_folds": tuple(range(10)),
        "max_images": {},
    },
}

MIRROR_ENV = "MIFGSM_MIRROR"
DATA_ENV = "MIFGSM_DATA"
ARTIFACTS_ENV = "MIFGSM_ARTIFACTS"


def profile_settings(profile: str) -> dict[str, Any]:
    """The sizes of a named profile; a clear error for an unknown name."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: expected one of {sorted(PROFILES)}")
    return dict(PROFILES[profile])


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to torch."""
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
    """The parameters every chapter takes (its papermill ``parameters`` cell)."""

    dataset: str = "lfw"
    data_dir: str | None = None
    model: str = "dlib"
    device: str = "auto"
    seed: int = 0
    profile: str = "default"
    artifacts_dir: str | None = None
    sizes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sizes = {**profile_settings(self.profile), **self.sizes}
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
