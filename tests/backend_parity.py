"""The child process of `test_backend_parity.py`: one Keras backend, every check, one JSON.

Run as `python -m tests.backend_parity CASES OUT [--only lrn,logits] [--keys bvlc-227]
[--plant alpha]` with `KERAS_BACKEND` set; the parent compares what it writes with the tolerances.
Every number is a max relative error, `max|got - want| / max|want|`, against the
float64 NumPy references (`tests/reference.py`, `tests/cuda_convnet/local_kernels.py`),
which share no code with the layers. The backend's own autodiff gives the gradients.

`--plant alpha` then makes `LocalResponseNormalization` use `alpha` where it should use
`alpha / size` (a real mistake of earlier ports) and runs the LRN and logits checks again,
so the parent can show that the same checks fail on that backend.
"""

import argparse
import importlib
import json
import sys

import keras
import numpy as np

from alexnet_keras.cuda_convnet.layers import ConvnetDropout, ConvnetNeuron, ConvnetPool2D
from alexnet_keras.cuda_convnet.local_layers import ContrastNormalization, ConvnetLocal2D
from alexnet_keras.layers import (
    GroupedConv2D,
    LocalResponseNormalization,
    SpatialResponseNormalization,
)
from tests import reference as ref
from tests.cuda_convnet import local_kernels as lk


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def plant_alpha_bug():
    """LRN with `alpha` not divided by `size`: scale alpha up by size after the layer divides."""
    init = LocalResponseNormalization.__init__

    def planted(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.alpha *= self.size

    LocalResponseNormalization.__init__ = planted


# --------------------------------------------------------------------- gradients per backend


def gradients(layer, x, r, training=False):
    """`(y, d sum(y * r) / dx, [d / dv for v in trainable weights])`, by the backend's autodiff."""
    backend = keras.backend.backend()
    layer.build(x.shape) if not layer.built else None
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=training) if training else layer(xt)
            loss = tf.reduce_sum(y * r)
        grads = tape.gradient(loss, [xt] + [v.value for v in layer.trainable_variables])
        return y.numpy(), grads[0].numpy(), [g.numpy() for g in grads[1:]]
    if backend == "jax":
        import jax

        def loss(xv, trainable):
            kwargs = {"training": True} if training else {}
            y, _ = layer.stateless_call(
                trainable, [v.value for v in layer.non_trainable_variables], xv, **kwargs
            )
            return (y * r).sum(), y

        fn = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
        (_, y), (dx, dv) = fn(x, [v.value for v in layer.trainable_variables])
        return np.asarray(y), np.asarray(dx), [np.asarray(g) for g in dv]
    import torch

    xt = torch.tensor(x, requires_grad=True)
    y = layer(xt, training=training) if training else layer(xt)
    (y * torch.tensor(r, dtype=y.dtype)).sum().backward()
    dv = [v.value.grad.numpy() for v in layer.trainable_variables]
    return y.detach().numpy(), xt.grad.numpy(), dv


def grad_err(dx, f, x, r, rng, n=12):
    """Relative error of `dx` against central differences of `sum(f(x) * r)` at `n` coordinates."""
    coords = [tuple(int(rng.integers(s)) for s in x.shape) for _ in range(n)]
    want = ref.numeric_grad(lambda v: float(np.sum(f(v) * r)), x.astype(np.float64), coords)
    return rel_err([dx[c] for c in coords], want)


# --------------------------------------------------------------------- the layers


def nchw(fn):
    """An NCHW reference applied to NHWC arrays."""
    return lambda x: fn(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)


def per_image(fn):
    """A `(C, H, W)` reference applied to each image of an NHWC batch."""
    return lambda x: np.stack([fn(im.transpose(2, 0, 1)).transpose(1, 2, 0) for im in x])


def check(layer, ref_fn, x, rng, training=False):
    r = rng.standard_normal(layer.compute_output_shape(x.shape))
    y, dx, dv = gradients(layer, x.astype(np.float32), r.astype(np.float32), training)
    return {"forward": rel_err(y, ref_fn(x)), "grad": grad_err(dx, ref_fn, x, r, rng)}, dv, r


def lrn_checks(rng):
    out = {}
    x = rng.normal(0, 60, (2, 5, 5, 16))
    for impl in ("kernel", "matmul"):
        layer = LocalResponseNormalization(5, 1e-4, 0.75, 1.0, implementation=impl)
        out[f"lrn-{impl}"] = check(layer, nchw(lambda v: ref.caffe_lrn(v, 5, 1e-4, 0.75, 1.0)),
                                   x, rng)[0]  # fmt: skip
        layer = LocalResponseNormalization(5, 1e-4, 0.75, 2.0, groups=2, implementation=impl)

        def halves(v):
            return np.concatenate([ref.cc_cmrnorm(h, 5, 1e-4, 0.75, 2.0) for h in np.split(v, 2)])

        out[f"lrn-groups2-{impl}"] = check(layer, per_image(halves), x, rng)[0]
    return out


def conv_checks(rng):
    x = rng.standard_normal((2, 9, 9, 8))
    kernel = rng.standard_normal((3, 3, 4, 6)) / 6
    bias = rng.standard_normal(6)
    layer = GroupedConv2D(6, 3, strides=2, groups=2)
    layer.build(x.shape)
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])

    def conv(v, k=kernel):
        return ref.caffe_conv(v, k.transpose(3, 2, 0, 1), bias, stride=2, group=2)

    result, (dk, _), r = check(layer, nchw(conv), x, rng)
    coords = [tuple(int(rng.integers(s)) for s in kernel.shape) for _ in range(8)]
    want = ref.numeric_grad(
        lambda k: float(np.sum(nchw(lambda v: conv(v, k))(x) * r)), kernel, coords
    )
    result["kernel-grad"] = rel_err([dk[c] for c in coords], want)
    return {"grouped-conv": result}


def pool_checks(rng):
    out = {}
    x = rng.standard_normal((2, 8, 8, 3))  # 8 -> 4 outputs: the last window clipped
    for pool, divisor in (("max", "clipped"), ("avg", "clipped"), ("avg", "window")):
        layer = ConvnetPool2D(pool, 3, 2, start=0, outputs=4, divisor=divisor)
        fn = per_image(lambda v, p=pool, d=divisor: ref.cc_pool(v, p, 3, 2, 0, 4, d))
        result, _, r = check(layer, fn, x, rng)
        if pool == "avg":  # cuda-convnet's own backward, both eras
            _, dx, _ = gradients(layer, x.astype(np.float32), r.astype(np.float32))
            want = np.stack([ref.cc_avg_pool_backward(g.transpose(2, 0, 1), 8, 3, 2, 0, divisor)
                             .transpose(1, 2, 0) for g in r])  # fmt: skip
            result["undo"] = rel_err(dx, want)
        out[f"pool-{pool}-{divisor}"] = result
    return out


def spatial_checks(rng):
    x = rng.normal(0, 3, (2, 6, 6, 4))
    layer = SpatialResponseNormalization(5, 1e-1, 0.75)
    fn = per_image(lambda v: ref.cc_rnorm(v, 5, 1e-1, 0.75))
    return {"spatial-norm": check(layer, fn, x, rng)[0]}


def neuron_checks(rng):
    x = rng.normal(0, 2, (2, 3, 3, 4))
    kinds = {"relu": lambda v: np.maximum(v, 0), "logistic": lambda v: 1 / (1 + np.exp(-v)),
             "tanh": lambda v: 2.0 * np.tanh(0.5 * v), "abs": np.abs,
             "ident": lambda v: v}  # fmt: skip
    params = {"tanh": (2.0, 0.5)}
    return {f"neuron-{k}": check(ConvnetNeuron(k, params.get(k, ())), fn, x, rng)[0]
            for k, fn in kinds.items()}  # fmt: skip


def dropout_checks(rng):
    x = rng.uniform(1, 2, (4, 16, 16, 8))
    layer = ConvnetDropout(0.5, seed=1)
    result = {"inference": rel_err(keras.ops.convert_to_numpy(layer(x.astype(np.float32))),
                                   0.5 * x)}  # fmt: skip
    r = np.ones_like(x, np.float32)
    y, dx, _ = gradients(layer, x.astype(np.float32), r, training=True)
    kept = y != 0
    # Not inverted: kept values are x itself, and the gradient is the mask.
    result["train-kept-values"] = rel_err(y[kept], x[kept])
    result["train-grad-is-mask"] = rel_err(dx, kept.astype(np.float64))
    result["train-keep-rate-off-by"] = abs(float(kept.mean()) - 0.5)
    return {"dropout": result}


def local_checks(rng):
    size, channels, filters, fs, stride, pad, groups = 7, 4, 6, 4, 2, 2, 2
    mods = lk.modules(size, fs, stride, pad)
    images = rng.standard_normal((channels, size, size, 2))
    w = rng.standard_normal((mods * mods * channels // groups * fs * fs, filters))
    b = rng.standard_normal((filters * mods * mods, 1))

    def keras_arrays(w, b):
        kernel = w.reshape(mods * mods, -1, fs * fs, filters).transpose(0, 2, 1, 3)
        return [kernel.astype(np.float32), b.reshape(filters, mods, mods).transpose(1, 2, 0)]

    layer = ConvnetLocal2D(filters, fs, stride, pad, groups)
    layer.build((2, size, size, channels))
    layer.set_weights(keras_arrays(w, b))
    dy = rng.standard_normal((filters, mods, mods, 2))
    y, gx, (gk, gb) = gradients(layer, lk.nhwc(images), lk.nhwc(dy))
    want_x, want_w, want_b = lk.np_local_grads(images, w, dy, fs, stride, pad, groups, filters)
    want_k, want_bias = keras_arrays(want_w, want_b)
    forward = lk.np_local(images, w, b, fs, stride, pad, groups, filters)
    return {"local": {"forward": rel_err(lk.chwn(y), forward),
                      "grad": rel_err(lk.chwn(gx), want_x), "kernel-grad": rel_err(gk, want_k),
                      "bias-grad": rel_err(gb, want_bias)}}  # fmt: skip


def cnorm_checks(rng):
    out = {}
    for size, divisor in ((3, "clipped"), (4, "window")):
        images = rng.standard_normal((3, 7, 7, 2)) * 2
        dy = rng.standard_normal(images.shape)
        layer = ContrastNormalization(size, 2.0, 0.75, divisor)
        y, gx, _ = gradients(layer, lk.nhwc(images), lk.nhwc(dy))
        full = divisor == "window"
        want, _, _ = lk.np_cnorm(images, size, 2.0, 0.75, full)
        # cuda-convnet's gradient (the mean held constant), through keras.ops.custom_gradient.
        want_grad = lk.np_cnorm_grad(images, dy, size, 2.0, 0.75, full)
        out[f"cnorm-{divisor}"] = {"forward": rel_err(lk.chwn(y), want),
                                   "grad": rel_err(lk.chwn(gx), want_grad)}  # fmt: skip
    return out


LAYER_CHECKS = {"lrn": lrn_checks, "conv": conv_checks, "pool": pool_checks,
                "spatial": spatial_checks, "neuron": neuron_checks, "dropout": dropout_checks,
                "local": local_checks, "cnorm": cnorm_checks}  # fmt: skip


# --------------------------------------------------------------------- the model


def caffe_params(size):
    return ref.random_caffe_params(np.random.default_rng(size))


def chm_layers(size):
    return ref.random_chm_layers(np.random.default_rng(100 + size))


def reference_case(variant, size, rgb):
    """`(float64 reference logits, {layer: calibration factor})`: the parent computes these once."""
    from tests.test_reference import CAFFE_TARGETS, CHM_TARGETS

    if variant == "chm2012":
        layers, drawn = chm_layers(size), chm_layers(size)
        mean = np.array(keras_mean(variant))
        xs = [(im - mean).transpose(2, 0, 1) for im in rgb]
        want = [ref.cuda_convnet_forward(xs[0], layers, calibrate=CHM_TARGETS)]
        want += [ref.cuda_convnet_forward(x, layers) for x in xs[1:]]
        factors = {k: layers[k]["biases"].flat[0] / drawn[k]["biases"].flat[0] for k in layers}
        return np.stack(want), factors
    params, drawn = caffe_params(size), caffe_params(size)
    x = (rgb[..., ::-1] - np.array(keras_mean(variant))).transpose(0, 3, 1, 2)
    order = "lrn_pool" if variant == "bvlc" else "pool_lrn"
    want = ref.caffe_forward(x, params, order=order, calibrate=CAFFE_TARGETS)
    return want, {k: params[k][1].flat[0] / drawn[k][1].flat[0] for k in params}


def keras_mean(variant):
    from alexnet_keras import variants

    return variants.IMAGENET_MEAN_RGB if variant == "chm2012" else variants.IMAGENET_MEAN_BGR


def keras_arrays(variant, size, factors):
    """The reference's calibrated random weights, redrawn from their seed, in Keras layout."""
    from alexnet_keras.cuda_convnet.chm2012_mapper import chm2012_arrays
    from tests.test_reference import caffe_to_keras

    if variant == "chm2012":
        layers = chm_layers(size)
        for name, layer in layers.items():
            layer["weights"] = [w * factors[name] for w in layer["weights"]]
            layer["biases"] = layer["biases"] * factors[name]
        return chm2012_arrays(layers)[0]
    params = {k: [w * factors[k], b * factors[k]] for k, (w, b) in caffe_params(size).items()}
    return caffe_to_keras(params)


def logits_checks(cases, keys=None):
    import alexnet_keras

    out = {}
    for key in keys or [str(k) for k in cases["keys"]]:
        variant, size = key.split("-")
        model = alexnet_keras.AlexNet(variant=variant, input_shape=(int(size), int(size), 3),
                                      classifier_activation=None)  # fmt: skip
        factors = json.loads(str(cases[f"factors-{key}"]))
        for name, values in keras_arrays(variant, int(size), factors).items():
            model.get_layer(name).set_weights(values)
        x = alexnet_keras.preprocess_input(cases[f"rgb-{size}"], variant=variant)
        out[key] = rel_err(model.predict_on_batch(x), cases[f"want-{key}"])
    return {"logits": out}


def weights_checks(cases):
    """`AlexNet(weights=path)` on a file the parent wrote on TensorFlow, against its logits."""
    import alexnet_keras

    model = alexnet_keras.AlexNet(weights=str(cases["weights_path"]), classifier_activation=None)
    x = alexnet_keras.preprocess_input(cases["rgb-227"], variant="caffenet")
    return {"weights-file": rel_err(model.predict_on_batch(x), cases["weights_logits"])}


def fit_checks(cases):
    """A few SGD steps on real 227 crops (the two images and their mirrors), batch 2."""
    import alexnet_keras

    model = alexnet_keras.AlexNet(classes=3)
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), "sparse_categorical_crossentropy")
    rgb = cases["rgb-227"]
    x = alexnet_keras.preprocess_input(np.concatenate([rgb, rgb[:, :, ::-1]]))
    before = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
    history = model.fit(x, np.array([0, 1, 0, 1]), batch_size=2, epochs=2, verbose=0)
    after = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
    return {"fit": {"losses": [float(v) for v in history.history["loss"]],
                    "conv1-changed": float(np.max(np.abs(after - before)))}}  # fmt: skip


def run_checks(cases, only, keys):
    result = {"layers": {}}
    for name, fn in LAYER_CHECKS.items():
        if "layers" in only or name in only:
            result["layers"].update(fn(np.random.default_rng(0)))
    if "logits" in only:
        result.update(logits_checks(cases, keys))
    for name, fn in (("weights", weights_checks), ("fit", fit_checks)):
        if name in only:
            result.update(fn(cases))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("cases")
    parser.add_argument("out")
    parser.add_argument("--only", default="layers,logits,weights,fit")
    parser.add_argument("--keys", help="the logits cases to run, e.g. bvlc-227 (default: all)")
    parser.add_argument("--plant", choices=["alpha"], help="then plant it and check LRN, logits")
    args = parser.parse_args(argv)
    cases = np.load(args.cases)
    keys = args.keys and args.keys.split(",")
    result = {"backend": keras.backend.backend(), **run_checks(cases, args.only.split(","), keys)}
    # jax and torch need no TensorFlow for any of this: layers, model, weights files, fit,
    # nor to import the converters, which write the backend-neutral files.
    importlib.import_module("alexnet_keras.converters.convert")
    importlib.import_module("alexnet_keras.cuda_convnet.convert")
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    if args.plant:  # the same checks, in the same process, on layers built after the plant
        plant_alpha_bug()
        result["planted"] = run_checks(cases, ["lrn", "logits"], keys)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
