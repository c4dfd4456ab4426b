"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

When TF Serving loads a version it replays this file, a TFRecord of
`tensorflow.serving.PredictionLog`s, before it marks the version available,
so no client request pays for the graph's first run (function instantiation,
the oneDNN kernels made for each batch size). It reads at most 1000 records,
and a record that fails makes the whole version fail to load.

Each record is a `PredictRequest` on `serving_default` whose `image_bytes`
are JPEGs, one request per batch size in `BATCH_SIZES`: the first call at
each batch size is the slow one. The JPEGs are encoded here by
`tf.io.encode_jpeg` from smooth synthetic colour patterns at a few photo
sizes: real baseline JPEGs that take the same checks, decode, resize and crop
as a client's, with no photo shipped in the package (the ImageNet sample's
images carry their photographers' rights) and no dependence on a data folder.

The records are protobuf wire bytes written here, from the field numbers of
TF Serving's `prediction_log.proto`, `predict.proto` and `model.proto`, around
the `TensorProto` that `tf.make_tensor_proto` gives; so an export needs no
`tensorflow-serving-api` (the `serving` extra). The tests parse the file with
that package's classes and compare it byte for byte with what they build.
"""

import pathlib

import numpy as np

__all__ = [
    "BATCH_SIZES",
    "IMAGE_SIZES",
    "WARMUP_FILE",
    "describe",
    "warmup_jpegs",
    "write_warmup_requests",
]

WARMUP_FILE = "tf_serving_warmup_requests"  # TF Serving's name, in assets.extra/
BATCH_SIZES = (1, 8)
# (height, width): a common photo size, a square one, and a portrait one.
IMAGE_SIZES = ((375, 500), (256, 256), (640, 480))
# Field numbers in tensorflow_serving/apis/*.proto.
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_REQUEST_MODEL_SPEC, _REQUEST_INPUTS = 1, 2
_MODEL_SPEC_SIGNATURE_NAME = 3
_MAP_KEY, _MAP_VALUE = 1, 2


def _varint(n):
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number, payload):
    """One length-delimited field (wire type 2): a message, string or bytes."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _pattern(height, width, seed):
    """Smooth RGB uint8 stripes and gradients: small as a JPEG, not a flat colour."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = 0.7 * seed
    channels = [
        127 + 100 * np.sin(x / 23.0 + phase),
        127 + 100 * np.cos((x + y) / 41.0 - phase),
        255 * y / max(height - 1, 1),
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def warmup_jpegs(count):
    """`count` JPEG byte strings, cycling through `IMAGE_SIZES`.

    Example:

    >>> from alexnet_keras.serving.warmup import warmup_jpegs
    >>> [j[:2] for j in warmup_jpegs(2)]
    [b'\\xff\\xd8', b'\\xff\\xd8']
    """
    import tensorflow as tf

    distinct = [tf.io.encode_jpeg(_pattern(h, w, i), quality=90).numpy()
                for i, (h, w) in enumerate(IMAGE_SIZES)]  # fmt: skip
    return [distinct[i % len(distinct)] for i in range(count)]


def _prediction_log(images, signature):
    """A serialized `PredictionLog` whose `predict_log.request` sends `images`."""
    import tensorflow as tf

    tensor = tf.make_tensor_proto(images, dtype=tf.string, shape=[len(images)])
    inputs = _field(_MAP_KEY, b"image_bytes") + _field(_MAP_VALUE, tensor.SerializeToString())
    spec = _field(_MODEL_SPEC_SIGNATURE_NAME, signature.encode())
    request = _field(_REQUEST_MODEL_SPEC, spec) + _field(_REQUEST_INPUTS, inputs)
    return _field(_PREDICTION_LOG_PREDICT_LOG, _field(_PREDICT_LOG_REQUEST, request))


def write_warmup_requests(folder, batch_sizes=BATCH_SIZES, signature="serving_default"):
    """Writes `<folder>/assets.extra/tf_serving_warmup_requests`.

    The model name in each request is left empty: TF Serving runs warm-up
    records on the version it is loading, whatever they name.

    Args:
        folder: a SavedModel folder.
        batch_sizes: one request per batch size, in this order.
        signature: the signature each request calls; its input is `image_bytes`.

    Returns:
        The path of the file written.

    Example:

    >>> import tempfile, tensorflow as tf
    >>> from alexnet_keras.serving.warmup import write_warmup_requests
    >>> path = write_warmup_requests(tempfile.mkdtemp(), batch_sizes=(1, 2))
    >>> path.name, sum(1 for _ in tf.data.TFRecordDataset(str(path)))
    ('tf_serving_warmup_requests', 2)
    """
    import tensorflow as tf

    path = pathlib.Path(folder) / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(exist_ok=True)
    images = warmup_jpegs(max(batch_sizes))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for n in batch_sizes:
            writer.write(_prediction_log(images[:n], signature))
    return path


def describe(batch_sizes=BATCH_SIZES):
    """The export report's line about the warm-up file.

    Example:

    >>> from alexnet_keras.serving.warmup import describe
    >>> describe((1, 8)).split("; ")[0]
    'warm-up: assets.extra/tf_serving_warmup_requests, 2 requests on serving_default (batch 1, 8'
    """
    sizes = ", ".join(map(str, batch_sizes))
    return (
        f"warm-up: assets.extra/{WARMUP_FILE}, {len(batch_sizes)} requests on serving_default "
        f"(batch {sizes}; synthetic JPEGs); --no-warmup leaves it out"
    )
