"""The serving contract: saved_model_cli, PredictRequest, REST bodies, the example clients."""

import base64
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import serving_fakes
from tests.conftest import ROOT, load_script

SAVED_MODEL_CLI = pathlib.Path(sys.executable).with_name("saved_model_cli")
SERVING_README = ROOT / "examples" / "serving" / "README.md"


@pytest.fixture(scope="module")
def loaded(bvlc_export):
    return tf.saved_model.load(str(bvlc_export.folder))


@pytest.fixture(scope="module")
def jpegs(imagenet_dir):
    files = sorted(imagenet_dir.glob("*/*.JPEG"))
    return [files[0].read_bytes(), files[500].read_bytes(), files[999].read_bytes()]


@pytest.fixture(scope="module")
def direct(loaded, jpegs):
    """What the signature itself answers: the reference for every transport."""
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(jpegs))
    return {k: v.numpy() for k, v in out.items()}


def _cli(*args):
    if not SAVED_MODEL_CLI.exists():
        pytest.skip("saved_model_cli is not installed beside this Python")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([str(SAVED_MODEL_CLI), *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# Slow set: test_saved_model_cli_run_serving_default runs the same tool on both signatures.
@pytest.mark.slow
def test_saved_model_cli_show_lists_both_signatures(bvlc_export):
    out = _cli("show", "--dir", str(bvlc_export.folder), "--all")
    default = out[out.index("signature_def['serving_default']") :]
    images = out[out.index("signature_def['predict_images']") :]
    assert re.search(r"inputs\['image_bytes'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)",
                     default)  # fmt: skip
    assert re.search(r"inputs\['images'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                     r"shape: \(-1, -1, -1, 3\)", images)  # fmt: skip
    for part in (default, images):
        part = part[: part.index("Method name is: tensorflow/serving/predict")]
        assert re.search(r"outputs\['probabilities'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                         r"shape: \(-1, 1000\)", part)  # fmt: skip
        for name, dtype in [("top_k_indices", "DT_INT32"), ("top_k_scores", "DT_FLOAT"),
                            ("top_k_labels", "DT_STRING")]:  # fmt: skip
            assert re.search(rf"outputs\['{name}'\] tensor_info:\s+dtype: {dtype}\s+"
                             r"shape: \(-1, 5\)", part), name  # fmt: skip


def test_saved_model_cli_run_serving_default(bvlc_export, jpegs, direct, tmp_path):
    request = tmp_path / "request.npy"
    np.save(request, np.array(jpegs[:1], dtype=object), allow_pickle=True)
    out = _cli("run", "--dir", str(bvlc_export.folder), "--tag_set", "serve", "--signature_def",
               "serving_default", "--inputs", f"image_bytes={request}")  # fmt: skip
    indices = re.search(r"Result for output key top_k_indices:\s*\[\[([\d\s]+)\]\]", out)
    assert [int(i) for i in indices.group(1).split()] == direct["top_k_indices"][0].tolist()
    labels = out[out.index("Result for output key top_k_labels:") :]
    assert direct["top_k_labels"][0][0].decode() in labels


def test_predict_request_serializes_parses_and_evaluates(loaded, jpegs, direct):
    pytest.importorskip("tensorflow_serving")
    from tensorflow_serving.apis import predict_pb2

    client = load_script("examples/serving/grpc_client.py")
    wire = client.build_request(jpegs, model="alexnet").SerializeToString()
    request = predict_pb2.PredictRequest.FromString(wire)
    assert request.model_spec.name == "alexnet"
    assert request.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(request.inputs["image_bytes"]).tolist() == jpegs
    response = serving_fakes.run_predict_request(request, loaded.signatures)
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    for name in ("top_k_indices", "top_k_labels"):
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs[name]), direct[name])
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]),
                               direct["probabilities"], rtol=0, atol=0)  # fmt: skip


def test_rest_body_decoded_as_tf_serving_does(loaded, jpegs, direct):
    client = load_script("examples/serving/rest_client.py")
    body = json.loads(json.dumps(client.request_body(jpegs)))
    assert body["instances"][0] == {"b64": base64.b64encode(jpegs[0]).decode()}
    signature, inputs = serving_fakes.decode_rest_body(body, loaded.signatures)
    assert inputs["image_bytes"].tolist() == jpegs
    predictions = serving_fakes.rest_predictions(
        signature(image_bytes=tf.constant(inputs["image_bytes"]))
    )
    assert [p["top_k_labels"] for p in predictions] == direct["top_k_labels"].astype(str).tolist()
    assert [p["top_k_indices"] for p in predictions] == direct["top_k_indices"].tolist()


def test_rest_client_over_http(loaded, jpegs, direct, tmp_path, capsys):
    client = load_script("examples/serving/rest_client.py")
    url, stop = serving_fakes.start_rest(loaded.signatures)
    try:
        predictions = client.predict(url, jpegs)
        assert [p["top_k_labels"] for p in predictions] == direct["top_k_labels"].astype(
            str
        ).tolist()
        np.testing.assert_allclose([p["top_k_scores"] for p in predictions],
                                   direct["top_k_scores"], atol=1e-7)  # fmt: skip
        with pytest.raises(RuntimeError, match=r"(?s)HTTP 400: .*image_bytes\[1\]: not a JPEG"):
            client.predict(url, [jpegs[0], b"GET / HTTP/1.0"])
        assert client.predict(url, jpegs[:1])[0]["top_k_labels"] == predictions[0]["top_k_labels"]
        image = tmp_path / "x.jpg"
        image.write_bytes(jpegs[2])
        assert client.main(["--url", url, str(image)]) == 0
        assert direct["top_k_labels"][2][0].decode() in capsys.readouterr().out
    finally:
        stop()


def test_grpc_client_over_a_socket(loaded, jpegs, direct):
    pytest.importorskip("tensorflow_serving")
    import grpc

    client = load_script("examples/serving/grpc_client.py")
    target, stop = serving_fakes.start_grpc(loaded.signatures)
    try:
        outputs = client.predict(target, jpegs)
        np.testing.assert_array_equal(outputs["top_k_labels"], direct["top_k_labels"])
        np.testing.assert_allclose(outputs["probabilities"], direct["probabilities"], atol=0)
        with pytest.raises(grpc.RpcError) as info:
            client.predict(target, [b""])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "image_bytes[0]: empty string" in info.value.details()
        np.testing.assert_array_equal(client.predict(target, jpegs[:1])["top_k_indices"],
                                      direct["top_k_indices"][:1])  # fmt: skip
    finally:
        stop()


def _readme_body(command):
    """The JSON after `-d '` in the README's `command` example, with cat.jpg's base64 spliced in."""
    text = SERVING_README.read_text("utf-8")
    block = next(b for b in re.findall(r"```\n(.*?)```", text, re.S) if b.startswith(command))
    raw = re.search(r"-d '(.*?)'(?: \\)?\n", block, re.S).group(1)
    return raw.replace("""'"$(base64 -w0 cat.jpg)"'""", "{b64}")


def test_readme_curl_body_is_a_valid_request(loaded, jpegs, direct):
    body = json.loads(_readme_body("curl").replace("{b64}", base64.b64encode(jpegs[1]).decode()))
    signature, inputs = serving_fakes.decode_rest_body(body, loaded.signatures)
    out = signature(image_bytes=tf.constant(inputs["image_bytes"]))
    np.testing.assert_array_equal(out["top_k_indices"].numpy()[0], direct["top_k_indices"][1])


def test_readme_grpcurl_body_is_a_valid_predict_request(loaded, jpegs, direct):
    pytest.importorskip("tensorflow_serving")
    from google.protobuf import json_format
    from tensorflow_serving.apis import predict_pb2

    text = _readme_body("grpcurl").replace("{b64}", base64.b64encode(jpegs[2]).decode())
    request = json_format.Parse(text, predict_pb2.PredictRequest())
    response = serving_fakes.run_predict_request(request, loaded.signatures)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["top_k_indices"])[0],
                                  direct["top_k_indices"][2])  # fmt: skip
