"""Classify images through TF Serving's REST API (`{"b64": ...}` instances).

Usage:
    python rest_client.py [--url http://localhost:8501/v1/models/alexnet:predict] IMAGE...

It needs only the standard library. The request body is TF Serving's row
format: one instance per image, each the base64 of the encoded file, for the
`serving_default` signature's single input `image_bytes`.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://localhost:8501/v1/models/alexnet:predict"


def request_body(images, signature="serving_default"):
    """The JSON body for encoded images (bytes), as a dict."""
    instances = [{"b64": base64.b64encode(data).decode("ascii")} for data in images]
    return {"signature_name": signature, "instances": instances}


def predict(url, images, timeout=30.0):
    """POSTs the images; returns TF Serving's `predictions`, one dict per image.

    Raises:
        RuntimeError: the server answered with an error (its message included).
    """
    body = json.dumps(request_body(images)).encode("utf-8")
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as e:  # TF Serving puts the reason in {"error": ...}
        try:
            message = json.loads(e.read()).get("error", e.reason)
        except ValueError:
            message = e.reason
        raise RuntimeError(f"{url}: HTTP {e.code}: {message}") from None
    return reply["predictions"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args(argv)
    images = []
    for path in args.images:
        with open(path, "rb") as f:
            images.append(f.read())
    try:
        predictions = predict(args.url, images)
    except (RuntimeError, OSError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    for path, p in zip(args.images, predictions, strict=True):
        print(path)
        for label, score in zip(p["top_k_labels"], p["top_k_scores"], strict=True):
            print(f"  {score:.4f}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
