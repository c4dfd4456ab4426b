"""A SavedModel client that knows nothing of alexnet_keras: TensorFlow and NumPy only.

    python tests/savedmodel_client.py EXPORT_DIR OUT.npz IMAGE...

Runs `serving_default` on the files' bytes (one batch) and `predict_images`
on each decoded, unresized image, and saves every output. It fails if
anything imported `alexnet_keras`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(export_dir, out, *files):
    loaded = tf.saved_model.load(export_dir)
    data = [open(f, "rb").read() for f in files]
    served = loaded.signatures["serving_default"](image_bytes=tf.constant(data))
    # Strings come back as object arrays; np.savez keeps them as plain bytes.
    results = {f"bytes_{k}": np.asarray(v.numpy().tolist()) for k, v in served.items()}
    rows = []
    for raw in data:
        image = tf.cast(tf.io.decode_image(raw, channels=3, expand_animations=False), tf.float32)
        rows.append(loaded.signatures["predict_images"](images=image[None])["probabilities"])
    results["images_probabilities"] = np.concatenate([r.numpy() for r in rows])
    imported = sorted(m for m in sys.modules if m.split(".")[0] == "alexnet_keras")
    if imported:
        raise SystemExit(f"alexnet_keras was imported: {imported}")
    np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
