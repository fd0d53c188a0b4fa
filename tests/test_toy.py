"""The feature-distortion toy's claims (Kumar et al. 2022) as assertions."""

import numpy as np
import pytest

from robust_core.toy import ToyConfig, linear_probe, run_toy


def test_fine_tuning_never_changes_features_on_ood_directions():
    # noise-free data, FT from a linear-probe head: the OOD-direction change stays at rounding level
    result = run_toy(ToyConfig(head_init="probe", label_noise=0.0, lr=0.1, steps=800))
    for method in ("ft", "lpft"):
        assert result[method]["change_ood"].max() < 1e-6
    # ... for every head initialisation, because the gradient's rows lie in the span of the ID inputs
    for head in ("random", "zero"):
        assert run_toy(ToyConfig(head_init=head))["ft"]["change_ood"].max() < 1e-6


def test_ft_fits_id_but_lpft_has_lower_ood_error_by_default():
    result = run_toy()
    ft, lpft, lp = result["ft"], result["lpft"], result["lp"]
    assert ft["id_loss"][-1] < 1e-3 and lpft["id_loss"][-1] < 1e-3  # both fit ID
    assert lpft["ood_loss"][-1] < ft["ood_loss"][-1] / 2  # LP-FT distorts far less
    assert ft["change_id"][-1] > 5 * lpft["change_id"][-1]  # FT moves the ID-subspace features more
    assert lp["change_id"].max() == 0.0  # LP never touches B


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_claims_hold_across_seeds(seed):
    result = run_toy(ToyConfig(seed=seed))
    assert result["lpft"]["ood_loss"][-1] < result["ft"]["ood_loss"][-1]


def test_linear_probe_is_least_squares():
    rng = np.random.default_rng(0)
    b0, x = rng.normal(size=(3, 6)), rng.normal(size=(50, 6))
    v = rng.normal(size=3)
    y = x @ b0.T @ v
    np.testing.assert_allclose(linear_probe(b0, x, y), v, atol=1e-8)
    with pytest.raises(ValueError, match="head_init"):
        run_toy(ToyConfig(head_init="bogus"))
