"""Loopback stand-ins for `tensorflow_model_server`, backed by an exported signature.

The binary is not installable here, so these decode requests by TF Serving's
documented rules and answer in its formats; everything the clients send and
receive crosses a real socket.

- REST (`/v1/models/<name>:predict`, the "row" format of TF Serving's REST
  API): `instances` is a list with one entry per example. With one input,
  each entry is that input's value; otherwise an object keyed by input name.
  A JSON object `{"b64": s}` is the binary string `base64.b64decode(s)`.
  The answer is `{"predictions": [{output: value, ...}, ...]}`, or
  `{"error": message}` with HTTP 400.
- gRPC: `tensorflow.serving.PredictionService/Predict` with TensorProtos.
"""

import base64
import concurrent.futures
import http.server
import json
import threading

import numpy as np
import tensorflow as tf


def decode_b64(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"], validate=True)
    if isinstance(value, list):
        return [decode_b64(v) for v in value]
    return value


def decode_rest_body(body, signatures):
    """`(signature, {input: array})` from a REST predict body, as TF Serving reads it."""
    name = body.get("signature_name", "serving_default")
    signature = signatures[name]
    inputs = list(signature.structured_input_signature[1])
    instances = body["instances"]
    if len(inputs) == 1 and not (instances and isinstance(instances[0], dict)
                                 and set(instances[0]) == set(inputs)):  # fmt: skip
        columns = {inputs[0]: [decode_b64(v) for v in instances]}
    else:
        columns = {k: [decode_b64(row[k]) for row in instances] for k in inputs}
    return signature, {k: np.array(v, dtype=object if not v or isinstance(v[0], bytes) else None)
                       for k, v in columns.items()}  # fmt: skip


def _jsonable(value):
    if value.dtype == object:
        return [_jsonable(v) if isinstance(v, np.ndarray) else v.decode("utf-8") for v in value]
    return value.tolist()


def rest_predictions(outputs):
    arrays = {k: v.numpy() for k, v in outputs.items()}
    n = len(next(iter(arrays.values())))
    return [{k: _jsonable(v[i]) if v.ndim > 1 else v[i].item() for k, v in arrays.items()}
            for i in range(n)]  # fmt: skip


class _RestHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server API)
        if self.path != f"/v1/models/{self.server.model_name}:predict":
            return self._reply(404, {"error": f"Servable not found for request: {self.path}"})
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            signature, inputs = decode_rest_body(body, self.server.signatures)
            outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            return self._reply(400, {"error": e.message})
        except (ValueError, KeyError) as e:
            return self._reply(400, {"error": f"JSON Parse error: {e}"})
        self._reply(200, {"predictions": rest_predictions(outputs)})

    def _reply(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def start_rest(signatures, model_name="alexnet"):
    """A running REST server; returns `(url, stop)`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RestHandler)
    server.signatures, server.model_name = signatures, model_name
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()
        thread.join()

    url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/{model_name}:predict"
    return url, stop


def run_predict_request(request, signatures):
    """Evaluates a `PredictRequest` as TF Serving does; returns a `PredictResponse`."""
    from tensorflow_serving.apis import predict_pb2

    signature = signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    outputs = signature(**inputs)
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for k, v in outputs.items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
    return response


def start_grpc(signatures, model_name="alexnet"):
    """A running gRPC PredictionService; returns `(target, stop)`."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the generated API)
            if request.model_spec.name != model_name:
                missing = f"Servable not found for request: {request.model_spec.name}"
                context.abort(grpc.StatusCode.NOT_FOUND, missing)
            try:
                return run_predict_request(request, signatures)
            except tf.errors.InvalidArgumentError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)

    options = [("grpc.max_receive_message_length", 64 << 20)]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return f"127.0.0.1:{port}", lambda: server.stop(None).wait()
