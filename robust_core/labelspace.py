# TEMPORARY stand-in until the torch-free module lands (delete before merging branch core)
import numpy as np


def has_class_subset_axis(shift):
    return shift in ("imagenet-r", "imagenet-a", "objectnet")


def head_to_subset(shift, n_head=1000):
    import torch

    from .datasets import get_spec, projection_for

    columns = projection_for(get_spec(shift))(torch.eye(n_head)).numpy()
    mapper = np.full(n_head, -1)
    for k in range(columns.shape[1]):
        mapper[columns[:, k] > 0] = k
    return mapper


def project(logits, shift):
    import torch

    from .datasets import get_spec, projection_for

    return projection_for(get_spec(shift))(torch.from_numpy(np.ascontiguousarray(logits))).numpy()
