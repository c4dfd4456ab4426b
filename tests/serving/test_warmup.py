"""TF Serving's warm-up file: parsed with tensorflow-serving-api, replayed in the SavedModel."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from alexnet_keras.cli import cli
from alexnet_keras.serving.warmup import (
    BATCH_SIZES,
    IMAGE_SIZES,
    WARMUP_FILE,
    write_warmup_requests,
)
from tests import exports, serving_fakes


def read_records(folder):
    path = folder / "assets.extra" / WARMUP_FILE
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


@pytest.fixture(scope="module")
def prediction_logs(bvlc_export):
    """The export's warm-up records, parsed by TF Serving's own message classes."""
    pytest.importorskip("tensorflow_serving", reason="needs pip install tensorflow-serving-api")
    from tensorflow_serving.apis import prediction_log_pb2

    records = read_records(bvlc_export.folder)
    return [prediction_log_pb2.PredictionLog.FromString(r) for r in records]


def test_the_records_are_predict_requests_with_jpegs(prediction_logs):
    assert 1 <= len(prediction_logs) <= 1000  # TF Serving reads at most 1000 records
    batches = []
    for log in prediction_logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert list(request.inputs) == ["image_bytes"]
        images = tf.make_ndarray(request.inputs["image_bytes"])
        batches.append(len(images))
        for data in images:
            shape = tf.io.extract_jpeg_shape(data).numpy().tolist()
            assert (shape[0], shape[1]) in IMAGE_SIZES and shape[2] == 3
    assert batches == list(BATCH_SIZES) and 1 in batches and max(batches) > 1


def test_the_wire_bytes_are_what_tensorflow_serving_api_writes(bvlc_export, prediction_logs):
    """The hand-built records, rebuilt field by field with the official classes."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    for record, log in zip(read_records(bvlc_export.folder), prediction_logs, strict=True):
        images = tf.make_ndarray(log.predict_log.request.inputs["image_bytes"]).tolist()
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = "serving_default"
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
        official = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        )
        assert official.SerializeToString() == record


def test_every_request_replays_and_equals_the_keras_model(bvlc_export, prediction_logs, tmp_path):
    """Each record as TF Serving runs it, against direct calls and `AlexNet` + `load_image`."""
    signatures = tf.saved_model.load(str(bvlc_export.folder)).signatures
    for i, log in enumerate(prediction_logs):
        request = log.predict_log.request
        response = serving_fakes.run_predict_request(request, signatures)
        served = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        images = tf.make_ndarray(request.inputs["image_bytes"])
        direct = signatures["serving_default"](image_bytes=tf.constant(images))
        for name, value in direct.items():
            np.testing.assert_array_equal(served[name], value.numpy(), err_msg=name)
        files = []
        for j, data in enumerate(images):
            files.append(tmp_path / f"{i}-{j}.jpg")
            files[-1].write_bytes(data)
        want = exports.reference_probabilities(bvlc_export, files)
        assert want.max() > 0.05  # peaked: a preprocessing mistake would show
        np.testing.assert_allclose(served["probabilities"], want, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(served["top_k_indices"][:, 0], want.argmax(axis=1))


def test_it_is_written_without_tensorflow_serving_api(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # import fails
    path = write_warmup_requests(tmp_path, batch_sizes=(1, 3))
    assert path == tmp_path / "assets.extra" / WARMUP_FILE
    assert len(read_records(tmp_path)) == 2


def test_the_report_names_the_file(bvlc_export):
    assert f"warm-up: assets.extra/{WARMUP_FILE}, {len(BATCH_SIZES)} requests" in bvlc_export.report


def test_no_warmup_leaves_it_out(tmp_path):
    weights = exports.make_weights(tmp_path / "m.weights.h5", "bvlc", classes=10)
    folder = tmp_path / "models" / "m" / "1"
    result = exports.export(weights, folder, "--no-warmup")
    assert "warm-up" not in result.output
    assert os.listdir(folder / "assets.extra") == ["alexnet_keras.json"]


def test_export_help_lists_no_warmup():
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0 and "--warmup / --no-warmup" in result.output
    assert WARMUP_FILE in result.output.replace("\n", " ").replace("  ", "")
