"""Setting A is measured on images the MLP never saw, and every step built on the MLP is keyed by its training
images (so a profile with another subset never reuses another MLP's results)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mifgsm_lib import pipeline
from mifgsm_lib.config import RunConfig
from mifgsm_lib.studies import evaluation_settings as study


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A results cache of this module's own (the steps here read labels and hash files, nothing more)."""
    return str(tmp_path_factory.mktemp("artifacts"))


def _config(mirror, subset_size: int, images: int = 1200, artifacts: str | None = None) -> RunConfig:
    return RunConfig(data_dir=str(mirror), device="cpu", profile="quick", artifacts_dir=artifacts,
                     sizes={"max_images": {"lfw": images}, "subset_size": subset_size})


class Recorder:
    """Stands in for :func:`pipeline._trained_mlp`: records each training set and returns a model that names it."""

    def __init__(self) -> None:
        self.trained: list[np.ndarray] = []

    def __call__(self, cfg: RunConfig, train: np.ndarray, name: str | None) -> tuple[Any, dict[str, float]]:
        self.trained.append(np.asarray(train).copy())
        return len(self.trained) - 1, {}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    record = Recorder()
    monkeypatch.setattr(pipeline, "_trained_mlp", record)
    return record


def test_the_mlp_is_trained_outside_the_sweep_subset(mirror, artifacts: str, recorder: Recorder) -> None:
    cfg = _config(mirror, subset_size=200, artifacts=artifacts)
    target = pipeline.evaluation_set(cfg, indices=pipeline.subset(cfg))
    assert study.setting_a_classifier(cfg, target) == 0, "the one MLP of Sec. 3.1 scores the subset"
    (train,) = recorder.trained
    assert len(train) > 0 and not np.isin(target.indices, train).any()
    assert pipeline.mlp_held_out(cfg, target.indices[target.labelled])


def test_where_too_few_images_are_left_each_image_is_scored_by_an_mlp_that_never_saw_it_or_its_person(
        mirror, artifacts: str, recorder: Recorder) -> None:
    # too few women outside the subset to train on
    cfg = _config(mirror, subset_size=200, images=300, artifacts=artifacts)
    target = pipeline.evaluation_set(cfg, indices=pipeline.subset(cfg))
    assert not pipeline.mlp_held_out(cfg, target.indices[target.labelled])
    classifier = study.setting_a_classifier(cfg, target)
    assert isinstance(classifier, pipeline.CrossFitted)
    assert len(recorder.trained) == pipeline.CROSSFIT_FOLDS
    scored = target.indices[target.labelled]
    people = pipeline.dataset(cfg).identity
    for image, fold in zip(scored, classifier.fold_of):
        train = recorder.trained[fold]
        assert image not in train
        assert people[image] not in set(people[train].tolist())


def test_crossfitted_scores_each_image_with_its_folds_model() -> None:
    class Constant:
        def __init__(self, value: int) -> None:
            self.value = value

        def predict(self, z: torch.Tensor) -> torch.Tensor:
            return torch.full((len(z),), self.value)

    fitted = pipeline.CrossFitted([Constant(0), Constant(1)], np.array([1, 0, 1]))
    assert fitted.predict(torch.zeros(3, 4)).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="templates of the 3 images"):
        fitted.predict(torch.zeros(2, 4))


def test_steps_built_on_the_mlp_are_keyed_by_its_training_images(mirror, artifacts: str) -> None:
    small, large, same = (_config(mirror, n, artifacts=artifacts) for n in (200, 400, 200))
    assert not np.array_equal(pipeline.mlp_training_images(small), pipeline.mlp_training_images(large))
    assert pipeline.estimators_key(small) != pipeline.estimators_key(large)
    assert pipeline.estimators_key(small) == pipeline.estimators_key(same)
    for method in ("mi-fgsm-mlp", "fgsm"):
        assert pipeline._direction_key(small, method, 64, None, None, "gender") != \
            pipeline._direction_key(large, method, 64, None, None, "gender")


def test_the_vclub_of_the_mlps_features_is_keyed_by_the_mlps_training_images(
        mirror, artifacts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    keys: list[dict[str, Any]] = []

    class Captured(Exception):
        pass

    class Cache:
        def state_dict(self, step: str, params: dict[str, Any], compute: Any) -> None:
            keys.append(params)
            raise Captured

    monkeypatch.setattr(pipeline, "estimator_features", lambda cfg, features, name=None: np.zeros((1, 4)))
    monkeypatch.setattr(pipeline, "cache", lambda cfg: Cache())
    for cfg in (_config(mirror, n, artifacts=artifacts) for n in (200, 400)):
        for features in ("mlp", "face"):
            with pytest.raises(Captured):
                pipeline.vclub(cfg, features)
    small_mlp, small_face, large_mlp, large_face = keys
    assert small_mlp != large_mlp, "another MLP: another vCLUB of its features"
    assert small_face == large_face, "the vCLUB of the face templates does not depend on the MLP"
