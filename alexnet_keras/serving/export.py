"""`alexnet-keras export`: a SavedModel for TF Serving, a LiteRT or an ONNX model.

The SavedModel has two signatures (see `alexnet_keras.serving.graph`):

- `serving_default`: `image_bytes`, a `[None]` string tensor of encoded
  JPEG/PNG/GIF/BMP/WebP images of any size;
- `predict_images`: `images`, float32 RGB 0..255 `[None, H, W, 3]` of any size.

Both return `probabilities` `[None, classes]`, and `top_k_indices`,
`top_k_scores` and `top_k_labels` `[None, k]`. The output folder is written
under a hidden temporary name beside it and renamed at the end, so TF Serving,
which polls `<base>/<model_name>/` for numbered version folders, never sees a
half-written version.
"""

import dataclasses
import json
import math
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

from alexnet_keras.files import apply_umask, write_error

__all__ = ["ExportReport", "export_model"]

FORMATS = ("saved_model", "tflite", "onnx")
_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}
_WHAT = {"saved_model": "SavedModel", "tflite": "LiteRT model", "onnx": "ONNX model"}
# What the pixels given to a LiteRT model must be resized to, per protocol (`resize_image`).
_RESIZED = {"shorter-side": "shorter side 256", "bvlc": "warped to 256x256"}
METADATA_FILE = "alexnet_keras.json"  # in assets.extra/, which TF Serving leaves alone


@dataclasses.dataclass
class ExportReport:
    """What `export_model` wrote."""

    output: pathlib.Path
    fmt: str
    variant: str
    input_size: int
    classes: int
    top_k: int
    weight_bytes: int
    written_bytes: int
    seconds: float
    notes: list
    protocol: str = "shorter-side"
    quantization: list = dataclasses.field(default_factory=list)

    def __str__(self):
        what = _WHAT[self.fmt]
        lines = [
            f"output   {self.output} ({what})",
            f"model    {self.variant}, {self.classes} classes, input {self.input_size}, "
            f"top {self.top_k}",
        ]
        if self.fmt == "saved_model":
            lines.append(
                "inputs   serving_default: image_bytes string [None] (JPEG/PNG/GIF/BMP/WebP)"
            )
            lines.append("         predict_images: images float32 [None, H, W, 3] (RGB 0..255)")
        else:
            batch = "N" if self.fmt == "onnx" else "1"
            lines.append(
                f"inputs   images float32 [{batch}, H, W, 3] (RGB 0..255, "
                f"{_RESIZED[self.protocol]}, H, W >= {self.input_size})"
            )
        lines.append("outputs  probabilities, top_k_indices, top_k_scores, top_k_labels")
        lines.append(
            f"size     {self.written_bytes / 2**20:.1f} MiB written for "
            f"{self.weight_bytes / 2**20:.1f} MiB of weights "
            f"({self.written_bytes / self.weight_bytes:.3f}x)"
        )
        lines += self.quantization
        lines += [f"note     {n}" for n in self.notes]
        lines.append(f"time     {self.seconds:.1f} s")
        return "\n".join(lines)


def _check_request(fmt, top_k, quantize, calibration, force):
    """The one-line refusals of the arguments, before anything is read or built."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    if quantize is not None:
        from alexnet_keras.serving.quantize import check_request

        check_request(fmt, quantize, calibration)
    elif force or calibration:
        flag = "--force" if force else "--calibration"
        raise ValueError(f"{flag} goes with --quantize int8|bf16 (the agreement gate's options)")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"--top-k must be a positive integer. Received: {top_k!r}")


def _check_output(output, fmt, overwrite):
    output = pathlib.Path(output)
    if fmt in _SUFFIX and output.suffix != _SUFFIX[fmt]:
        raise ValueError(
            f"--format {fmt} writes a file ending in {_SUFFIX[fmt]}. Received: {output}"
        )
    if output.exists() and not overwrite:
        kind = "folder" if output.is_dir() else "file"
        raise ValueError(
            f"{output}: the {kind} already exists; pass --overwrite to replace it "
            "(TF Serving versions are usually new numbers instead)"
        )
    if output.exists() and output.is_dir() != (fmt == "saved_model"):
        raise ValueError(
            f"{output}: exists and is not a {'folder' if fmt == 'saved_model' else 'file'}"
        )
    return output


def _folder_bytes(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())


def _replace(tmp, output):
    """Moves `tmp` to `output`; an old `output` is moved aside first, then deleted."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
    os.replace(tmp, output)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def _mean_shape(preprocessing):
    if not isinstance(preprocessing, dict):
        return (3,)
    return np.shape(preprocessing.get("mean", (0.0, 0.0, 0.0)))


def _build(weights, input_size, top_k):
    from alexnet_keras.model import AlexNet
    from alexnet_keras.preprocessing import class_labels, weights_protocol
    from alexnet_keras.pretrained import resolve
    from alexnet_keras.serving.graph import ServingModule
    from alexnet_keras.variants import check_input_size
    from alexnet_keras.weights import read_metadata

    path = resolve(weights)
    meta = read_metadata(path)
    size = check_input_size(int(input_size or meta["input_size"]))
    try:
        labels = class_labels(meta)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    preprocessing = meta.get("preprocessing") or meta["variant"]
    mean_shape = _mean_shape(preprocessing)
    if len(mean_shape) == 3 and mean_shape[0] != size:
        raise ValueError(
            f"{path}: its mean image is {mean_shape[0]}x{mean_shape[1]}, so it serves at "
            f"--input-size {mean_shape[0]} only. Received: --input-size {size}"
        )
    model = AlexNet(weights=path, input_shape=(size, size, 3))
    module = ServingModule(model, preprocessing=preprocessing, labels=labels, top_k=top_k,
                           protocol=weights_protocol(meta))  # fmt: skip
    return path, meta, size, model, module


def export_model(weights, output, *, top_k=5, input_size=None, fmt="saved_model", overwrite=False,
                 warmup=True, quantize=None, calibration=None, force=False):  # fmt: skip
    """Exports a weights file for serving.

    Args:
        weights: a `.weights.h5` with alexnet-keras metadata, or a release name.
        output: for a SavedModel, the version folder TF Serving loads,
            `<base>/<model_name>/<version>`; for LiteRT, a `.tflite` file;
            for ONNX, a `.onnx` file.
        top_k: labels per response.
        input_size: the crop size; defaults to the weights'.
        fmt: `"saved_model"`, `"tflite"` or `"onnx"`.
        overwrite: replace an existing output.
        warmup: with a SavedModel, write TF Serving's warm-up requests,
            `assets.extra/tf_serving_warmup_requests` (`serving.warmup`).
        quantize: `None`, `"int8"` or `"bf16"` (ONNX; `serving.quantize`).
        calibration: with `quantize`, the images that calibrate int8 and the
            held-out images of the agreement gate: a folder or a dataset
            (`serving.calibration`).
        force: write a quantized model below the agreement threshold.

    Returns:
        An `ExportReport`.

    Raises:
        ValueError: bad arguments, an existing output without `overwrite`,
            or an unreadable weights file.

    Example:

    >>> import os, tempfile, alexnet_keras
    >>> from alexnet_keras import weights
    >>> from alexnet_keras.serving.export import export_model
    >>> tmp = tempfile.mkdtemp()
    >>> path = weights.save_weights(alexnet_keras.AlexNet(classes=10),
    ...                             os.path.join(tmp, "m.weights.h5"), variant="bvlc")
    >>> report = export_model(path, os.path.join(tmp, "models", "alexnet", "1"), top_k=3)
    >>> sorted(os.listdir(report.output))
    ['assets', 'assets.extra', 'fingerprint.pb', 'saved_model.pb', 'variables']
    """
    _check_request(fmt, top_k, quantize, calibration, force)
    output = _check_output(output, fmt, overwrite)
    start = time.perf_counter()
    path, meta, size, model, module = _build(weights, input_size, top_k)
    weight_bytes = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.variables)
    notes, quantization = [], []
    if fmt == "saved_model" and not output.name.isdigit():
        notes.append(
            f"TF Serving loads numbered version folders (<base>/<model_name>/<version>); "
            f"{output.name!r} is not a number"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "weights": str(path),
        "variant": meta["variant"],
        "input_size": size,
        "classes": meta["classes"],
        "top_k": top_k,
        "preprocessing": meta.get("preprocessing"),
        "protocol": module.protocol,
        "source": meta.get("source"),
    }
    if fmt == "saved_model":
        import tensorflow as tf

        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
        # mkdtemp makes the folder 0700; the server often runs as another user.
        apply_umask(tmp)
        try:
            notes += _write_saved_model(module, tmp, record, warmup=warmup)
            written = _folder_bytes(tmp / "variables")
            _replace(tmp, output)
        except (OSError, tf.errors.OpError) as e:  # a full disk, a read-only folder
            failure = write_error(output, e, weight_bytes)
            if failure is None:
                raise
            raise failure from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        options = dict(quantize=quantize, calibration=calibration, force=force)
        written, quantization = _write_file(fmt, module, model, meta, record, output, options,
                                            notes)  # fmt: skip
        notes.append(
            "decode and the antialiased resize are not in the "
            f"{'LiteRT op set' if fmt == 'tflite' else 'ONNX graph'}: "
            f"pass RGB pixels {_RESIZED[module.protocol]} (alexnet_keras.load_image(path, "
            f"protocol={module.protocol!r}) does it)"
        )
    return ExportReport(
        output=output, fmt=fmt, variant=meta["variant"], input_size=size,
        classes=meta["classes"], top_k=top_k, weight_bytes=weight_bytes,
        written_bytes=written, seconds=time.perf_counter() - start, notes=notes,
        protocol=module.protocol, quantization=quantization,
    )  # fmt: skip


# LiteRT's probabilities match the graph's to float32 round-off (measured: 1e-7 to 1e-6).
LITERT_TOLERANCE = 1e-4


def _litert_model(module, notes):
    """The LiteRT flatbuffer, checked on the LiteRT runtime before anything is written."""
    from alexnet_keras.serving.lite import MISSING_RUNTIME, tflite_bytes, verify

    data = tflite_bytes(module)
    # A seeded noise image of the protocol's shape (BVLC's 256x256 warp, or a shorter side
    # of 256): the check needs no image files.
    shape = (256, 256, 3) if module.protocol == "bvlc" else (256, 299, 3)
    pixels = np.random.default_rng(0).uniform(0, 255, shape)
    try:
        diff, same = verify(data, module, pixels.astype(np.float32))
    except ValueError as e:
        if str(e) != MISSING_RUNTIME:
            raise
        notes.append(f"not run on LiteRT: {MISSING_RUNTIME}")
        return data
    if diff > LITERT_TOLERANCE or not same:
        raise ValueError(
            f"the LiteRT model disagrees with the TensorFlow graph (max |dp| {diff:.2e}, top-k "
            f"{'equal' if same else 'different'}); nothing was written"
        )
    notes.append(f"ran on LiteRT (ai-edge-litert): max |probability difference| {diff:.1e}")
    return data


def _write_saved_model(module, folder, record, warmup=True):
    """Writes the SavedModel and its assets.extra/; returns notes for the report."""
    import tensorflow as tf

    tf.saved_model.save(module, str(folder), signatures=module.signatures())
    extra = folder / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / METADATA_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    if not warmup:
        return []
    from alexnet_keras.serving.warmup import describe, write_warmup_requests

    write_warmup_requests(folder)
    return [describe()]


def _write_file(fmt, module, model, meta, record, output, quantize_options, notes):
    """Writes a LiteRT or ONNX file; returns its size and the quantization report lines."""
    from alexnet_keras.weights import atomic_write

    lines = []
    if fmt == "tflite":
        data = _litert_model(module, notes)
    else:
        from alexnet_keras.serving.onnx_model import onnx_bytes
        from alexnet_keras.variants import class_labels, class_names

        labels = class_labels(meta)
        data = onnx_bytes(model, record, labels)
        if quantize_options["quantize"] is not None:
            from alexnet_keras.serving.quantize import quantize_onnx

            ids = [n[0] if isinstance(n, (list, tuple)) else None
                   for n in class_names(meta) or []]  # fmt: skip
            data, lines = quantize_onnx(data, record, **quantize_options, labels=labels,
                                        model_ids=ids)  # fmt: skip
    atomic_write(output, lambda tmp: pathlib.Path(tmp).write_bytes(data), suffix=output.suffix,
                 needed=len(data))  # fmt: skip
    return len(data), lines
