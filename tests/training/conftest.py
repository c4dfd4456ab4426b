"""Fixtures of the training tests."""

import numpy as np
import pytest

from alexnet_keras.geometry import layer_plan
from alexnet_keras.weights import write_arrays


@pytest.fixture(scope="package")
def imagenet_weights(tmp_path_factory):
    """A 1000-class bvlc weights file with small random weights (what `convert` writes)."""
    rng = np.random.default_rng(0)
    arrays = {
        p.name: [(rng.standard_normal(s) * 0.01).astype(np.float32) for s in p.weight_shapes]
        for p in layer_plan("bvlc")
        if p.weight_shapes
    }
    path = tmp_path_factory.mktemp("w") / "random.weights.h5"
    return write_arrays(path, arrays, variant="bvlc", source={"format": "test"})
