"""Classify images through TF Serving's gRPC API (a `PredictRequest`).

Usage:
    pip install tensorflow-serving-api     # or: pip install 'alexnet-keras[serving]'
    python grpc_client.py [--target localhost:8500] [--model alexnet] IMAGE...
"""

import argparse
import sys

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

DEFAULT_TARGET = "localhost:8500"
# An AlexNet request of 64 large JPEGs can pass gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 64 << 20


def build_request(images, model="alexnet", signature="serving_default"):
    """A `PredictRequest` for encoded images (bytes) on `serving_default`."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["image_bytes"].CopyFrom(
        tf.make_tensor_proto(images, dtype=tf.string, shape=[len(images)])
    )
    return request


def predict(target, images, model="alexnet", timeout=30.0):
    """Sends the request; returns `{output name: numpy array}`."""
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]  # fmt: skip
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(build_request(images, model), timeout=timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--model", default="alexnet")
    args = parser.parse_args(argv)
    images = []
    for path in args.images:
        with open(path, "rb") as f:
            images.append(f.read())
    try:
        outputs = predict(args.target, images, args.model)
    except grpc.RpcError as e:
        print(f"Error: {args.target}: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    for i, path in enumerate(args.images):
        print(path)
        for label, score in zip(
            outputs["top_k_labels"][i], outputs["top_k_scores"][i], strict=True
        ):
            print(f"  {score:.4f}  {label.decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
