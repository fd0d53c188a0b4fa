import numpy as np
from conftest import ft_and_lp_endpoints, make_image_folder

from robust_core.datasets import resolve
from robust_core.evaluate import EvalConfig, MethodSpec, evaluate_alpha_grid, evaluate_per_alpha, linear_is_valid
from robust_core.store import StoreWriter


def test_decode_once_equals_per_alpha_loop(tmp_path):
    zs, preprocess, theta0, theta_e2e, theta_lin = ft_and_lp_endpoints()
    assert not linear_is_valid(theta0, theta_e2e) and linear_is_valid(theta0, theta_lin)
    alphas = [0.0, 0.3, 0.7, 1.0]
    methods = [MethodSpec("ft", theta0, theta_e2e, alphas), MethodSpec("lp", theta0, theta_lin, alphas, linear=True)]
    evalset = resolve("id", root=make_image_folder(tmp_path / "id", per_class=7), transform=preprocess)
    writer = StoreWriter(tmp_path / "store", {"t": 1}, logits_dtype="float32")
    config = EvalConfig(batch_size=5, chunk_batches=2, num_workers=0, progress=False, feature_rows=10, amp="fp32")
    evaluate_alpha_grid(zs, methods, [evalset], writer, config)
    writer.assemble("id", [(0, len(evalset.dataset))])
    for spec in methods:
        reference = evaluate_per_alpha(zs, spec, evalset, config)
        grid = np.load(tmp_path / "store" / "logits" / spec.name / "id.npy")
        for a_i, alpha in enumerate(alphas):
            got = grid[a_i]
            np.testing.assert_allclose(got, reference[alpha], atol=1e-3, rtol=1e-3)  # TF32 convs on GPU
    feats = np.load(tmp_path / "store" / "features" / "ft" / "id.npy")
    assert feats.shape[:2] == (2, 10)
