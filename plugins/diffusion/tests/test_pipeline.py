"""The shipped digits pipeline with the LM schedulers, and the classifier metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMPipeline, DDPMPipeline
from hessframe_diffusion import LMDDIMScheduler, LMDPMSolverMultistepScheduler
from hessframe_diffusion.digits import (
    PRETRAINED_DIGITS_PIPELINE,
    load_digit_images,
    load_digit_labels,
)
from hessframe_diffusion.metrics import (
    frechet_distance,
    kernel_inception_distance,
    load_digits_classifier,
)


@pytest.fixture(scope="module")
def pipeline():
    return DDPMPipeline.from_pretrained(
        PRETRAINED_DIGITS_PIPELINE, local_files_only=True, low_cpu_mem_usage=False
    )


@pytest.mark.parametrize("scheduler_class", [LMDDIMScheduler, LMDPMSolverMultistepScheduler])
@pytest.mark.parametrize("corrector", ["none", "lml"])
def test_ddpm_pipeline_gives_images_in_range(pipeline, scheduler_class, corrector):
    pipeline.scheduler = scheduler_class.from_config(
        pipeline.scheduler.config, lm_corrector=corrector, timestep_spacing="trailing"
    )
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(
        batch_size=5, generator=torch.Generator().manual_seed(0), num_inference_steps=4,
        output_type="np",
    ).images
    assert images.shape == (5, 8, 8, 1)
    assert np.isfinite(images).all()
    assert images.min() >= 0.0
    assert images.max() <= 1.0


def test_ddim_pipeline_runs_with_lm_scheduler(pipeline):
    ddim = DDIMPipeline(unet=pipeline.unet, scheduler=pipeline.scheduler)
    # DDIMPipeline converts its scheduler to DDIMScheduler when built, so the
    # LM scheduler is set afterwards.
    ddim.scheduler = LMDDIMScheduler.from_config(pipeline.scheduler.config, lm_lambda=0.5)
    ddim.set_progress_bar_config(disable=True)
    images = ddim(
        batch_size=2, generator=torch.Generator().manual_seed(1), num_inference_steps=3,
        output_type="np",
    ).images
    assert images.shape == (2, 8, 8, 1)
    assert type(ddim.scheduler) is LMDDIMScheduler


def test_pipeline_loads_with_saved_lm_scheduler(tmp_path):
    shipped = LMDDIMScheduler.from_pretrained(PRETRAINED_DIGITS_PIPELINE, subfolder="scheduler")
    shipped.save_pretrained(tmp_path)
    scheduler = LMDDIMScheduler.from_pretrained(tmp_path, lm_lambda=0.3)
    reloaded = DDPMPipeline.from_pretrained(
        PRETRAINED_DIGITS_PIPELINE, scheduler=scheduler, local_files_only=True,
        low_cpu_mem_usage=False,
    )
    assert type(reloaded.scheduler) is LMDDIMScheduler
    assert reloaded.scheduler.config.lm_lambda == 0.3


def test_shipped_classifier_labels_test_digits():
    classifier = load_digits_classifier()
    with torch.no_grad():
        predictions = classifier(load_digit_images("test")).argmax(1)
    accuracy = float((predictions == load_digit_labels("test")).float().mean())
    assert accuracy > 0.95


def test_frechet_distance_matches_eigenvalue_formula():
    generator = np.random.default_rng(0)
    a = generator.normal(size=(300, 4))
    b = generator.normal(size=(300, 4)) @ np.diag([1.0, 2.0, 0.5, 1.5]) + 0.3
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b) - 2 * cross
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_kid_matches_explicit_sums():
    generator = np.random.default_rng(1)
    a, b = generator.normal(size=(6, 3)), generator.normal(size=(5, 3)) + 0.5

    def kernel(x, y):
        return (x @ y / 3 + 1) ** 3

    within_a = sum(kernel(a[i], a[j]) for i in range(6) for j in range(6) if i != j) / 30
    within_b = sum(kernel(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / 20
    across = sum(kernel(a[i], b[j]) for i in range(6) for j in range(5)) / 30
    assert kernel_inception_distance(a, b) == pytest.approx(within_a + within_b - 2 * across)


@pytest.mark.parametrize("metric", [frechet_distance, kernel_inception_distance])
@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "same number of features, got 3 and 4"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "features_a must be a 2-D array"),
        (np.zeros((5, 3)), np.full((5, 3), np.nan), "features_b contains NaN"),
    ],
)
def test_metrics_reject_bad_feature_sets(metric, a, b, message):
    from hessframe.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=message):
        metric(a, b)
