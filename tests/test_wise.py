import numpy as np
import pytest
import torch
from torch import nn

from robust_core.mixing import mix
from robust_core.models import ClassificationHead, ImageClassifier
from robust_core.wise import (
    InPlaceInterpolator,
    InterpolationError,
    interpolate,
    parse_alphas,
)


class TinyBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)).mean((2, 3))


def _pair():
    torch.manual_seed(0)
    a, b = TinyBN(), TinyBN()
    a.bn.num_batches_tracked.fill_(3)
    b.bn.num_batches_tracked.fill_(11)
    b.bn.running_mean.uniform_()
    return a.state_dict(), b.state_dict()


def test_floats_mixed_ints_copied_from_finetuned():
    t0, t1 = _pair()
    mixed = interpolate(t0, t1, 0.3)
    for key in t0:
        if torch.is_floating_point(t0[key]):
            assert torch.allclose(mixed[key], 0.7 * t0[key] + 0.3 * t1[key], atol=1e-6), key
        else:
            assert torch.equal(mixed[key], t1[key]), key
    assert int(mixed["bn.num_batches_tracked"]) == 11
    # endpoints are exact
    assert all(torch.equal(interpolate(t0, t1, 0.0)[k], t0[k]) for k in t0 if torch.is_floating_point(t0[k]))
    assert all(torch.equal(interpolate(t0, t1, 1.0)[k], t1[k]) for k in t0)


def test_interpolated_tensors_are_independent_of_the_inputs():
    t0, t1 = _pair()
    for alpha in (0.0, 0.5, 1.0):
        mixed = interpolate(t0, t1, alpha)
        for key in t0:
            assert mixed[key] is not t0[key] and mixed[key] is not t1[key]
            assert mixed[key].data_ptr() not in (t0[key].data_ptr(), t1[key].data_ptr()), (alpha, key)


def test_interpolate_is_mix_on_every_float_tensor():
    t0, t1 = _pair()
    for alpha in (0.1, 0.5, 0.7):
        mixed = interpolate(t0, t1, alpha)
        assert all(torch.equal(mixed[k], t0[k] + alpha * (t1[k] - t0[k])) for k in t0 if torch.is_floating_point(t0[k]))


def test_mismatches_are_named():
    t0, t1 = _pair()
    missing = dict(t1)
    missing.pop("conv.bias")
    with pytest.raises(InterpolationError, match="conv.bias"):
        interpolate(t0, missing, 0.5)
    wrong_shape = dict(t1, **{"conv.bias": torch.zeros(5)})
    with pytest.raises(InterpolationError, match=r"conv.bias: \(4,\) vs \(5,\)"):
        interpolate(t0, wrong_shape, 0.5)
    wrong_dtype = dict(t1, **{"conv.bias": t1["conv.bias"].double()})
    with pytest.raises(InterpolationError, match="conv.bias: torch.float32 vs torch.float64"):
        interpolate(t0, wrong_dtype, 0.5)


def test_inplace_interpolator_matches_interpolate():
    t0, t1 = _pair()
    module = TinyBN()
    interp = InPlaceInterpolator(module, t0, t1)
    for alpha in (0.0, 0.25, 1.0, 0.6):
        interp.set_alpha(alpha)
        expected = interpolate(t0, t1, alpha)
        for key, value in module.state_dict().items():
            assert torch.allclose(value, expected[key], atol=1e-6), (alpha, key)


def test_linear_head_weight_space_equals_output_space():
    torch.manual_seed(1)
    encoder = nn.Linear(8, 6)  # frozen: identical in both endpoints
    zs = ImageClassifier(encoder, ClassificationHead(torch.randn(5, 6) * 10))
    ft = ImageClassifier(encoder, ClassificationHead(torch.randn(5, 6) * 10, torch.randn(5)))
    x = torch.randn(32, 8)
    with torch.no_grad():
        out0, out1 = zs(x).numpy(), ft(x).numpy()
        for alpha in np.linspace(0, 1, 11):
            probe = ImageClassifier(nn.Linear(8, 6), ClassificationHead(torch.zeros(5, 6)))
            probe.load_state_dict(interpolate(zs.state_dict(), ft.state_dict(), alpha))
            weight_space = probe(x).numpy()
            np.testing.assert_allclose(weight_space, mix(out0, out1, alpha), atol=1e-5)


def test_end_to_end_weight_space_differs_from_output_space():
    """Sanity: with a non-linear encoder the two ensembles are different models."""
    torch.manual_seed(2)
    zs = ImageClassifier(nn.Sequential(nn.Linear(8, 6), nn.ReLU()), ClassificationHead(torch.randn(5, 6)))
    ft = ImageClassifier(nn.Sequential(nn.Linear(8, 6), nn.ReLU()), ClassificationHead(torch.randn(5, 6)))
    x = torch.randn(32, 8)
    probe = ImageClassifier(nn.Sequential(nn.Linear(8, 6), nn.ReLU()), ClassificationHead(torch.zeros(5, 6)))
    probe.load_state_dict(interpolate(zs.state_dict(), ft.state_dict(), 0.5))
    with torch.no_grad():
        assert not np.allclose(probe(x).numpy(), mix(zs(x).numpy(), ft(x).numpy(), 0.5), atol=1e-3)


def test_parse_alphas():
    assert parse_alphas("0:1:0.05")[:3] == [0.0, 0.05, 0.1] and len(parse_alphas("0:1:0.05")) == 21
    assert parse_alphas("1,0,0.5") == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="endpoints"):
        parse_alphas("0,0.5")
    with pytest.raises(ValueError, match="start:stop:step"):
        parse_alphas("a:b:c")


@pytest.mark.parametrize(
    "spec, match",
    [
        ("0,0.5,1,nan", "finite"),
        ("0,0.5,1.5", r"in \[0, 1\]"),
        ("0:inf:0.1", "finite"),
        ("0:1:1e-7", "at most"),
        ("0,0.12341,0.12344,1", "same at the store's precision"),
        ("0,0.5", "endpoints"),
        ("a,b", "comma-separated"),
    ],
)
def test_parse_alphas_rejects_bad_grids_with_a_clear_message(spec, match):
    from robust_core.wise import parse_alphas

    with pytest.raises(ValueError, match=match):
        parse_alphas(spec)
