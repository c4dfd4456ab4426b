"""`export --quantize int8|bf16`: smaller ONNX models, written only past the agreement gate.

Which mechanism, and why:

- `int8` (ONNX): ONNX Runtime's static quantization
  (`onnxruntime.quantization.quantize_static`) in the QDQ format, int8
  weights per output channel and uint8 activations, ranges from the 99.999th
  percentile of each activation over the calibration images
  (`serving.calibration`): on the fitted CIFAR head of the tests, min/max
  ranges kept 93 % top-1 agreement, entropy 93 %, the percentile 97 %. It is maintained with the
  runtime that runs it, needs no TensorFlow op coverage, its QDQ graph is
  read by OpenVINO too, and on x86 with VNNI it runs the u8s8 integer
  kernels. Conv and Gemm (fc6-fc8: 58.6 M of the 61 M parameters) are
  quantized; LRN, pooling, softmax and top-k stay float.
- `bf16` (ONNX): the Conv and Gemm weights are stored as bfloat16 and cast
  to float32 in the graph, so any ONNX runtime loads it and the file halves;
  ONNX Runtime folds the casts at load time and computes in float32 (it has
  no bfloat16 CPU kernels for these ops). Compute in bf16 is a runtime
  setting, not a file: OpenVINO's CPU plugin runs the fp32 file in bf16 on
  AVX-512 BF16 / AMX (`INFERENCE_PRECISION_HINT`; `benchmarks/bench_export.py`).
- SavedModel and LiteRT: not quantized here.

The agreement gate (`serving.agreement`) then compares the result with fp32
on the held-out images and refuses to write below 99 % top-1 agreement.
"""

import contextlib
import io
import logging
import pathlib
import tempfile

import numpy as np

from alexnet_keras.serving.onnx_model import require_onnx

__all__ = ["MODES", "bf16_weights", "check_request", "int8_model", "quantize_onnx"]

MODES = ("int8", "bf16")
_QUANTIZED_OPS = ("Conv", "Gemm")


def check_request(fmt, quantize, calibration):
    """The one-line refusals of a quantization request, before any work."""
    if quantize not in MODES:
        raise ValueError(f"--quantize must be one of {', '.join(MODES)}. Received: {quantize!r}")
    if fmt != "onnx":
        raise ValueError(f"--quantize applies to --format onnx. Received: --format {fmt}")
    if not calibration:
        raise ValueError(
            f"--quantize {quantize} needs --calibration DIR|dataset: real images that calibrate "
            "it and the held-out images of the agreement gate"
        )
    require_onnx("onnx", "onnxruntime")


def bf16_weights(data):
    """The fp32 ONNX model with its Conv/Gemm weights stored as bfloat16 (+ Cast nodes)."""
    import ml_dtypes
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    weights = {i for n in graph.node if n.op_type in _QUANTIZED_OPS for i in n.input[1:2]}
    casts = []
    for tensor in graph.initializer:
        if tensor.name not in weights:
            continue
        name = tensor.name
        rounded = numpy_helper.to_array(tensor).astype(ml_dtypes.bfloat16)
        stored = f"{name}_bf16"
        raw = rounded.view(np.uint16).tobytes()
        bf16 = helper.make_tensor(stored, onnx.TensorProto.BFLOAT16, rounded.shape, raw, raw=True)
        tensor.CopyFrom(bf16)
        casts.append(helper.make_node("Cast", [stored], [name], to=onnx.TensorProto.FLOAT))
    for i, cast in enumerate(casts):
        graph.node.insert(i, cast)
    return model.SerializeToString()


class _Reader:
    """The calibration images for `quantize_static`, one image a run."""

    def __init__(self, images):
        self._images = iter(images)

    def get_next(self):
        image = next(self._images, None)
        return None if image is None else {"images": image[None].astype(np.float32)}


def int8_model(data, images):
    """ONNX Runtime static QDQ int8 of an fp32 export, calibrated on `images`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="alexnet-int8-") as tmp:
        src, dst = pathlib.Path(tmp, "fp32.onnx"), pathlib.Path(tmp, "int8.onnx")
        src.write_bytes(data)
        # Its calibrator print()s its histogram settings and logs advice on the root
        # logger: neither is the export report's business.
        with contextlib.redirect_stdout(io.StringIO()), _root_warnings_off():
            quantize_static(
                str(src), str(dst), _Reader(images), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(_QUANTIZED_OPS), per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile,
            )  # fmt: skip
        return dst.read_bytes()


@contextlib.contextmanager
def _root_warnings_off():
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _session(data):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # its warnings are not the user's business
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def quantize_onnx(data, record, *, quantize, calibration, force, labels=None, model_ids=None):
    """Quantizes an fp32 ONNX export and runs the agreement gate.

    Args:
        data: the fp32 model's bytes (`onnx_bytes`).
        record: the export's record (`protocol`, ...).
        quantize: `"int8"` or `"bf16"`.
        calibration: the `--calibration` source (`serving.calibration`).
        force: write it below the agreement threshold.
        labels, model_ids: the model's class labels and ids, to score accuracy.

    Returns:
        `(bytes, report lines)`.

    Raises:
        ValueError: a bad calibration source, or agreement below the threshold.
    """
    from alexnet_keras.serving import agreement
    from alexnet_keras.serving.calibration import open_images

    held_out = open_images(calibration, record["protocol"], held_out=True)
    if quantize == "int8":
        calibration_set = open_images(calibration, record["protocol"])
        quantized = int8_model(data, calibration_set.images)
        how = (
            f"int8 (ONNX Runtime static QDQ, per-channel), calibrated on "
            f"{len(calibration_set.images)} images of {calibration_set.name}"
        )
    else:
        quantized = bf16_weights(data)
        how = "bf16 weights (Conv/Gemm stored as bfloat16, cast to float32 in the graph)"
    result = agreement.measure(_session(data), _session(quantized), held_out, mode=quantize,
                               model_labels=labels or [], model_ids=model_ids)  # fmt: skip
    agreement.check(result, force=force)
    lines = [f"quantize {how}", *result.lines()]
    lines.append(f"size     {len(quantized) / len(data):.3f}x the fp32 file")
    return quantized, lines
