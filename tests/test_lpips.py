import pytest
import torch

from evaluation.metrics import lpips
from safin.io.images import load_image

from .conftest import REPO

EXAMPLES = REPO / "tests" / "fixtures" / "lpips"


@pytest.fixture(scope="module")
def images():
    return [load_image(EXAMPLES / f) for f in ("ex_ref.png", "ex_p0.png", "ex_p1.png")]


def test_lpips_with_offline_trunk_matches_the_reference_values(images):
    ref, p0, p1 = images
    assert abs(float(lpips(ref, p0)) - 0.722) < 2e-3
    assert abs(float(lpips(ref, p1)) - 0.138) < 2e-3


def test_lpips_with_random_trunk_collapses(images):
    ref, p0, p1 = images
    rand = [float(lpips(ref, p, random_trunk=True)) for p in (p0, p1)]
    assert all(r < 0.08 for r in rand)
    assert float(lpips(ref, p0)) > 5 * rand[0]


def test_lpips_is_zero_for_identical_images_and_batched(images):
    ref, p0, _ = images
    batch_a = torch.stack([ref, ref])
    batch_b = torch.stack([ref, p0])
    d = lpips(batch_a, batch_b)
    assert d.shape == (2,) and float(d[0]) < 1e-6 and float(d[1]) > 0.5


def test_lpips_rejects_mismatched_shapes(images):
    with pytest.raises(ValueError, match="shapes differ"):
        lpips(images[0], images[0][:, :10])
