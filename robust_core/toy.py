"""The feature-distortion toy of Kumar et al. (2022, LP-FT): a two-layer linear network y = v^T B x.

Pretrained features ``B0`` (k x d) are close to the true features ``B*``; the truth is
``y = v*^T B* x``. ID inputs lie in an m-dimensional subspace S of R^d, OOD inputs in its orthogonal
complement. Gradient descent on the ID squared loss changes ``B`` by ``-lr * (residual * v) x^T``, whose
rows lie in span(x) = S: **fine-tuning never touches B on the OOD directions**. If the head ``v`` is bad
(random or zero), fitting ID moves the head and distorts B inside S to match it, and the OOD prediction
``v^T B0 x_ood`` gets worse. A linear probe first (LP-FT) starts near a good head, so the gradients are
small and the features barely move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ToyConfig:
    d: int = 20  # input dimension
    k: int = 5  # feature dimension (rows of B)
    m: int = 8  # dimension of the ID subspace S (m >= k makes the probe identifiable)
    n: int = 200  # ID training examples
    n_ood: int = 500  # OOD evaluation examples (in the orthogonal complement of S)
    feature_error: float = 0.1  # ||B0 - B*|| per entry: how imperfect pretraining is
    label_noise: float = 0.0  # std of noise added to ID labels
    lr: float = 0.05  # gradient-descent step size (full batch)
    steps: int = 400  # fine-tuning steps
    head_init: str = "random"  # FT head initialisation: random | zero | probe
    seed: int = 0


def _problem(config: ToyConfig):
    rng = np.random.default_rng(config.seed)
    q, _ = np.linalg.qr(rng.normal(size=(config.d, config.d)))
    basis_id, basis_ood = q[:, : config.m], q[:, config.m :]
    b_true = rng.normal(size=(config.k, config.d)) / np.sqrt(config.d)
    v_true = rng.normal(size=config.k)
    b0 = b_true + config.feature_error * rng.normal(size=b_true.shape) / np.sqrt(config.d)
    x_id = rng.normal(size=(config.n, config.m)) @ basis_id.T
    x_ood = rng.normal(size=(config.n_ood, config.d - config.m)) @ basis_ood.T
    y_id = x_id @ b_true.T @ v_true + config.label_noise * rng.normal(size=config.n)
    y_ood = x_ood @ b_true.T @ v_true
    return rng, basis_id, basis_ood, b0, v_true, x_id, y_id, x_ood, y_ood


def _loss(v, b, x, y) -> float:
    return float(0.5 * np.mean((x @ b.T @ v - y) ** 2))


def linear_probe(b0: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares head on frozen features (minimum-norm solution)."""
    feats = x @ b0.T
    return np.linalg.lstsq(feats, y, rcond=None)[0]


def _train(v, b, b0, x, y, x_ood, y_ood, basis_id, basis_ood, lr, steps, train_features=True):
    hist = {k: np.empty(steps + 1) for k in ("id_loss", "ood_loss", "change_id", "change_ood")}

    def record(t):
        delta = b - b0
        hist["id_loss"][t] = _loss(v, b, x, y)
        hist["ood_loss"][t] = _loss(v, b, x_ood, y_ood)
        hist["change_id"][t] = np.linalg.norm(delta @ basis_id)
        hist["change_ood"][t] = np.linalg.norm(delta @ basis_ood)

    record(0)
    n = len(y)
    for t in range(1, steps + 1):
        feats = x @ b.T
        residual = feats @ v - y
        grad_v = feats.T @ residual / n
        grad_b = np.outer(v, residual @ x) / n  # rows in span(x) = S
        v = v - lr * grad_v
        if train_features:
            b = b - lr * grad_b
        record(t)
    return v, b, hist


def run_toy(config: ToyConfig | None = None) -> dict:
    """Train LP, FT (head init per config) and LP-FT on the toy; return their training curves.

    Returns ``{"lp" | "ft" | "lpft": {"id_loss", "ood_loss", "change_id", "change_ood": arrays over steps}}``
    plus ``"config"``. ``change_*`` are Frobenius norms of ``(B - B0)`` restricted to the ID / OOD subspace.
    """
    config = config or ToyConfig()
    if config.head_init not in ("random", "zero", "probe"):
        raise ValueError(f"head_init must be random, zero or probe (got {config.head_init!r}).")
    rng, basis_id, basis_ood, b0, v_true, x, y, x_ood, y_ood = _problem(config)
    probe = linear_probe(b0, x, y)
    out = {"config": config}
    _, _, out["lp"] = _train(
        np.zeros(config.k), b0.copy(), b0, x, y, x_ood, y_ood, basis_id, basis_ood, config.lr, config.steps, train_features=False
    )
    # LP curves: gradient descent on the head only, from zero (converges to the probe)
    head = {"random": rng.normal(size=config.k), "zero": np.zeros(config.k), "probe": probe.copy()}[config.head_init]
    _, _, out["ft"] = _train(head, b0.copy(), b0, x, y, x_ood, y_ood, basis_id, basis_ood, config.lr, config.steps)
    _, _, out["lpft"] = _train(probe.copy(), b0.copy(), b0, x, y, x_ood, y_ood, basis_id, basis_ood, config.lr, config.steps)
    return out


def _compare(a: float, b: float, name_a: str, name_b: str, what: str) -> str:
    """A deterministic simulation has no sampling noise: the words follow the numbers (ties within 1%)."""
    if abs(a - b) <= 0.01 * max(abs(a), abs(b), 1e-12):
        return f"{name_a} and {name_b} end with about the same {what} ({a:.3g} vs {b:.3g})"
    return f"{name_a} ends with a {'higher' if a > b else 'lower'} {what} than {name_b} ({a:.3g} vs {b:.3g})"


def narrate_toy(result: dict, names: dict[str, str]) -> str:
    """What these settings do, in words that follow ``run_toy``'s final numbers (FT against LP-FT)."""
    ood_move = max(float(result[k]["change_ood"][-1]) for k in ("lp", "ft", "lpft"))
    return (
        "With these settings: "
        + _compare(result["ft"]["ood_loss"][-1], result["lpft"]["ood_loss"][-1], names["ft"], "LP-FT", "OOD loss")
        + "; "
        + _compare(
            result["ft"]["change_id"][-1], result["lpft"]["change_id"][-1], names["ft"], "LP-FT", "feature change on the ID subspace"
        )
        + f"; the largest feature change on the OOD directions is {ood_move:.1e}"
        + (" (zero up to rounding)." if ood_move < 1e-8 else ".")
    )
