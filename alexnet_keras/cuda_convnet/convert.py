"""`alexnet-keras convert CHECKPOINT --format cuda-convnet`: a CHM 2012 checkpoint to Keras.

A layers-145-shaped checkpoint becomes the single-tower `AlexNet(variant=
"chm2012")` weights file (`chm_mapper`), written without TensorFlow, with
the metadata the release implies: RGB input, the mean image (the centre 224
crop of `batches.meta`'s 256x256 `data_mean`) and the class order of its
`label_names`. Any other net needs its cfg files (`--layers`, `--params`)
and becomes a weights file of `chm_model.build_model`'s cfg-mirroring model.
"""

import dataclasses
import pathlib
import time

import numpy as np

from alexnet_keras.cuda_convnet import checkpoint as cuda_convnet
from alexnet_keras.cuda_convnet import chm2012_mapper as chm_mapper
from alexnet_keras.cuda_convnet.batches_meta import read_batches_meta

__all__ = ["ConvnetReport", "convert_checkpoint", "default_output"]

CHM_SIZE = 224


@dataclasses.dataclass
class ConvnetReport:
    """What `convert_checkpoint` did; `str(report)` is the CLI's report."""

    source: str
    checkpoint: str
    target: str
    classes: int
    output: pathlib.Path
    layers: list
    notes: list
    seconds: float
    # What `converters.verify.verify_checkpoint` compares against: the cfg net
    # (None without --layers), the checkpoint's arrays and its batches.meta.
    net: object = dataclasses.field(default=None, repr=False)
    arrays: dict = dataclasses.field(default=None, repr=False)
    batches: dict = dataclasses.field(default=None, repr=False)
    chm2012: bool = False

    def __str__(self):
        lines = [
            f"source   {self.source}",
            f"format   cuda-convnet checkpoint ({self.checkpoint})",
            f"model    {self.target}, {self.classes} classes",
            "layers   " + "\n         ".join(self.layers),
        ]
        lines += [f"note     {n}" for n in self.notes]
        lines += [f"output   {self.output} (keras)", f"time     {self.seconds:.1f} s"]
        return "\n".join(lines)


def _mean_crop(meta, path):
    mean = meta.get("mean")
    if mean is None:
        return None
    c, h, w = mean.shape
    if c != 3 or h != w or h < CHM_SIZE:
        raise ValueError(
            f"{path}: data_mean is {c}x{h}x{w}; the chm2012 net needs a 3-channel mean of at "
            f"least {CHM_SIZE}x{CHM_SIZE}"
        )
    top = (h - CHM_SIZE) // 2  # cuda-convnet's test-time crop: the centre (crop_border 16 of 256)
    return mean[:, top : top + CHM_SIZE, top : top + CHM_SIZE].transpose(1, 2, 0)


def _names(meta, classes, path):
    names = (meta or {}).get("label_names")
    if names is not None and len(names) != classes:
        raise ValueError(f"{path}: lists {len(names)} label_names; the net has {classes} outputs")
    return names


def _output(output, digest, stem):
    if output:
        return pathlib.Path(output)
    from alexnet_keras import registry

    return registry.converted_name(stem, digest)


def _stem(src, file):
    return pathlib.Path(src).name.split(".")[0] or file.stem


def default_output(src, digests=None):
    """Where `convert_checkpoint(src)` writes: `<cache>/<checkpoint name>-<sha256[:8]>.weights.h5`.

    The digest is the checkpoint file's (a directory's newest file), so the
    same checkpoint always maps to the same cached output. `digests`
    (`registry.file_digests` of that file) saves reading it when the caller
    has them, as `caffe.convert.default_output`.

    Example:

    >>> from alexnet_keras.cuda_convnet.convert import default_output
    >>> default_output("no/such/checkpoint")
    Traceback (most recent call last):
    ...
    ValueError: no/such/checkpoint: no such file or directory, expected a cuda-convnet checkpoint
    """
    from alexnet_keras import registry
    from alexnet_keras.cuda_convnet.checkpoint_io import checkpoint_file

    file = pathlib.Path(checkpoint_file(src, []))
    digests = digests or registry.file_digests(file)
    return _output(None, digests["sha256"], _stem(src, file))


def convert_checkpoint(src, output=None, *, meta=None, layers_cfg=None, params_cfg=None,
                       digests=None, semantics=None):  # fmt: skip
    """Converts a cuda-convnet checkpoint to a Keras weights file.

    Args:
        src: a checkpoint directory (its newest file is read), or a zip,
            gzip or plain pickle checkpoint file.
        output: destination `.weights.h5`; default
            `<cache>/<checkpoint name>-<sha256[:8]>.weights.h5`.
        meta: `batches.meta` (mean image and label names).
        layers_cfg, params_cfg: the net's cfg files. Needed for any net that
            is not layers-145-shaped; checked against the checkpoint if given.
        digests: `registry.file_digests` of the checkpoint file, if the
            caller has them (`default_output` took them); else read here.
        semantics: `"2011"` or `"2012"`: the cuda-convnet era the net was
            trained with (`era.decide`); default: decided from `layers_cfg`.

    Returns:
        A `ConvnetReport`; it carries what `converters.verify` needs.

    Raises:
        ValueError: a one-line message naming the file and the problem; no
            output file is left behind.
    """
    start = time.perf_counter()
    ckpt = cuda_convnet.read_checkpoint(src)
    file = pathlib.Path(ckpt.source)
    notes = list(ckpt.notes)
    net = None
    if layers_cfg is not None:
        from alexnet_keras.cuda_convnet.cfg_net import read_net

        net = read_net(layers_cfg, params_cfg, semantics=semantics)
        notes += cuda_convnet.check_against(ckpt, net) or []
    elif params_cfg is not None or semantics is not None:
        given = "--params" if params_cfg is not None else "--convnet-semantics"
        raise ValueError(f"{given} needs --layers (the layer definition file)")
    batches = read_batches_meta(meta) if meta is not None else None
    layers = {name: cuda_convnet.layer_arrays(ckpt, name) if layer.get("weights") is not None
              else dict(layer) for name, layer in ckpt.layers.items()}  # fmt: skip
    stem = _stem(src, file)
    from alexnet_keras import registry

    digests = digests or registry.file_digests(file)
    digest = digests["sha256"]
    source = {"path": str(file.resolve()), "format": "cuda-convnet", **digests,
              "epoch": ckpt.epoch, "batchnum": ckpt.batchnum, "release": None,
              "converter": "alexnet_keras.converters"}  # fmt: skip
    chm2012 = chm_mapper.is_chm145(layers) and (net is None or _is_145(net))
    if chm2012:
        out = _write_chm2012(layers, file, batches, meta, _output(output, digest, stem),
                             source, notes)  # fmt: skip
        target, classes, shapes = "AlexNet chm2012 (single tower)", out[1], out[2]
        output = out[0]
    elif net is None:
        raise ValueError(
            f"{file}: not a layers-145-shaped net; pass its cfg files with --layers and --params"
        )
    else:
        target_path = _output(output, digest, stem)
        output, classes, shapes = _write_mirror(net, layers, file, batches, target_path, source)
        target = f"the cfg model of {pathlib.Path(layers_cfg).name}"
    return ConvnetReport(source=str(src), checkpoint=f"{file.name}, epoch {ckpt.epoch}",
                         target=target, classes=classes, output=output, layers=shapes,
                         notes=notes, seconds=time.perf_counter() - start, net=net,
                         arrays=layers, batches=batches, chm2012=chm2012)  # fmt: skip


def _is_145(net):
    return {layer.name for layer in net.layers if layer.weight_shapes} == set(
        chm_mapper.CHM145_WEIGHTED
    )


def _write_chm2012(layers, file, batches, meta_path, output, source, notes):
    from alexnet_keras import weights
    from alexnet_keras.variants import IMAGENET_MEAN_RGB

    arrays, more = chm_mapper.chm2012_arrays(layers, str(file))
    notes += more
    classes = int(arrays["fc8"][1].shape[0])
    names = _names(batches, classes, meta_path)
    mean = _mean_crop(batches, meta_path) if batches else None
    if mean is None:
        notes.append(
            "no --meta batches.meta: the mean is BVLC's per-channel ImageNet mean, not the "
            "checkpoint's mean image, and the classes have no names"
        )
        mean = np.array(IMAGENET_MEAN_RGB, np.float32)
    preprocessing = {"color_order": "RGB", "mean": np.round(mean, 5).tolist()}
    weights.write_arrays(output, arrays, variant="chm2012", input_size=CHM_SIZE,
                         class_names=names, preprocessing=preprocessing, source=source)  # fmt: skip
    shapes = [f"{k:<6} {' '.join('x'.join(map(str, a.shape)) for a in v)}"
              for k, v in arrays.items()]  # fmt: skip
    return output, classes, shapes


def _write_mirror(net, layers, file, batches, output, source):
    from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
    from alexnet_keras.cuda_convnet.cfg_weights import save_mirror_weights

    arrays = mirror_arrays(net, layers, str(file))
    classes = next(layer.output_shape[0] for layer in net.layers if layer.type == "softmax")
    names = _names(batches, classes, file)
    mean = None if batches is None else batches.get("mean")
    save_mirror_weights(net, arrays, output, class_names=names, mean=mean, source=source)
    shapes = [f"{k:<10} {' '.join('x'.join(map(str, a.shape)) for a in v)}"
              for k, v in arrays.items()]  # fmt: skip
    return output, classes, shapes
