"""The `alexnet-keras` command line.

Each command parses its options and calls one library function. TensorFlow is
imported inside the commands, so `--help` stays instant. Bad input ends with a
one-line message and exit code 2, never a traceback.
"""

import functools
import os
import sys

import click

from alexnet_keras import _runtime
from alexnet_keras.variants import WEIGHTED_LAYERS

__all__ = ["cli"]


def _quiet_tensorflow():
    # TF prints several INFO/oneDNN lines at import; users can still raise this.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _runtime.configure_environment()


def _fail(message, code):
    click.echo("Error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


def _user_errors(fn):
    """Bad input (ValueError) is `Error: ...` with exit code 2; network and OS errors exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from alexnet_keras.registry import OfflineError

        try:
            return fn(*args, **kwargs)
        except OfflineError as e:
            _fail(e, 1)
        except ValueError as e:
            _fail(e, 2)
        except OSError as e:
            _fail(f"{e.filename or ''}: {e.strerror or e}" if e.filename else e, 1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alexnet-keras")
def cli():
    """AlexNet for Keras 3: faithful models, legacy weight converters, training, export."""


@cli.command()
@click.option(
    "--variant",
    type=click.Choice(["bvlc", "caffenet", "chm2012"]),
    default="bvlc",
    show_default=True,
    help="Which AlexNet: BVLC Caffe, CaffeNet, or the CHM 2012 cuda-convnet net.",
)
@click.option(
    "--input-size",
    type=click.IntRange(min=1),
    default=None,
    help="Input height and width (224 or 227); defaults to the variant's own.",
)
@click.option(
    "--classes", type=click.IntRange(min=1), default=1000, show_default=True, help="fc8 outputs."
)
@_user_errors
def summary(variant, input_size, classes):
    """Print the layer table: name, type, output shape, parameters.

    It shows which AlexNet you have: the layer order, where the LRN sits, the
    grouped convolutions and the padding that keeps fc6 at 6x6x256.
    """
    _quiet_tensorflow()
    from alexnet_keras.summary import layer_table

    click.echo(layer_table(variant=variant, input_size=input_size, classes=classes))


@cli.command()
@click.argument("src")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "npy", "caffemodel", "keras", "cuda-convnet"]),
    default="auto",
    show_default=True,
    help="The source format; auto reads the file's first bytes (a folder is a cuda-convnet "
    "checkpoint).",
)
@click.option(
    "--variant",
    type=click.Choice(["bvlc", "caffenet"]),
    default=None,
    help="Which AlexNet the weights are for. A .caffemodel says so itself; a .npy "
    "does not, and defaults to bvlc.",
)
@click.option(
    "--prototxt",
    type=click.Path(),
    default=None,
    help="A deploy.prototxt to check the .caffemodel against.",
)
@click.option(
    "--verify-images",
    type=click.Path(),
    default=None,
    help="A folder of images: compare the converted model's logits with an independent "
    "numpy Caffe forward pass on them.",
)
@click.option(
    "--verify-count", type=click.IntRange(min=1), default=8, show_default=True,
    help="How many images --verify-images uses.",
)  # fmt: skip
@click.option(
    "--to",
    type=click.Choice(["keras", "npy"]),
    default="keras",
    show_default=True,
    help="keras: a .weights.h5 with metadata. npy: caffe-tensorflow's bvlc_alexnet.npy "
    "(dict of lists), also from a .weights.h5 trained here.",
)
@click.option(
    "--class-names",
    type=click.Path(),
    default=None,
    help="A text file with one class name per line, in fc8 order (for non-ImageNet "
    "weights such as Places).",
)
@click.option(
    "--meta",
    type=click.Path(),
    default=None,
    help="cuda-convnet: batches.meta (the mean image and label names).",
)
@click.option(
    "--layers",
    "layers_cfg",
    type=click.Path(),
    default=None,
    help="cuda-convnet: the layer definition file (layers-145.cfg).",
)
@click.option(
    "--params",
    "params_cfg",
    type=click.Path(),
    default=None,
    help="cuda-convnet: the layer parameter file (layer-params-145.cfg).",
)
@_user_errors
def convert(src, output, fmt, variant, prototxt, verify_images, verify_count, to, class_names,
            meta, layers_cfg, params_cfg):  # fmt: skip
    """Convert a legacy AlexNet release to Keras weights.

    SRC is bvlc_alexnet.npy (either flavour), a .caffemodel (bvlc_alexnet,
    bvlc_reference_caffenet, or any AlexNet-shaped Caffe model), a
    .weights.h5 (with --to npy), the name of a known release
    (bvlc_alexnet, bvlc_reference_caffenet), which is downloaded and
    verified if it is not in the cache, or a cuda-convnet checkpoint
    (--format cuda-convnet: a layers-145 net becomes AlexNet chm2012
    weights; any other net needs --layers and --params).

    The output goes to ~/.keras/models/alexnet_keras/<release>-<sha256[:8]>.weights.h5
    ($ALEXNET_KERAS_HOME overrides the folder; -o overrides the path).
    """
    from alexnet_keras import registry
    from alexnet_keras.caffe.convert import convert_file

    if fmt == "cuda-convnet" or (fmt == "auto" and os.path.isdir(src)):
        if prototxt or to != "keras" or variant or class_names:
            raise ValueError(
                "a cuda-convnet checkpoint takes -o, --meta, --layers, --params and "
                "--verify-images only"
            )
        from alexnet_keras.cuda_convnet.convert import convert_checkpoint

        if layers_cfg is not None:
            _quiet_tensorflow()  # a cfg model is written through Keras
        report = convert_checkpoint(src, output, meta=meta, layers_cfg=layers_cfg,
                                    params_cfg=params_cfg, verify_images=verify_images,
                                    verify_count=verify_count)  # fmt: skip
        click.echo(str(report))
        if report.verify is not None and not report.verify.passed:
            _fail(
                f"{report.output}: the converted model disagrees with the numpy cuda-convnet "
                f"reference (max relative logit error {report.verify.max_rel:.3g})",
                1,
            )
        return
    if meta or layers_cfg or params_cfg:
        raise ValueError("--meta, --layers and --params are for --format cuda-convnet")
    if not os.path.exists(src) and src in registry.release_names():
        cached = registry.converted_path(src)
        if cached is not None and not (output or verify_images or to != "keras"):
            click.echo(f"{src}: already converted: {cached}")
            return
        src = str(registry.download(src, None if fmt == "auto" else fmt))
    if verify_images and to != "keras":
        raise ValueError("--verify-images checks a Keras weights file; drop --to npy")
    if verify_images:  # before converting: bad input must not leave an output file
        from alexnet_keras.converters.verify import find_images

        find_images(verify_images, verify_count)
    names = None
    if class_names is not None:
        from alexnet_keras.caffe.source import existing_file

        text = existing_file(class_names, "a text file of class names").read_text("utf-8")
        names = [line.strip() for line in text.splitlines() if line.strip()]
    report = convert_file(
        src, output, fmt=fmt, variant=variant, prototxt=prototxt, to=to, class_names=names
    )
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(str(report))
    if verify_images:
        _quiet_tensorflow()
        from alexnet_keras.converters.verify import verify

        result = verify(report.output, report.net, verify_images, verify_count)
        click.echo(str(result))
        if not result.passed:
            _fail(
                f"{report.output}: the converted model disagrees with the numpy Caffe reference "
                f"(max relative logit error {result.max_rel:.3g})",
                1,
            )


def _epoch_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected epochs such as 120,130. Received: {value}") from None


def _training_options(fn):
    """The options `finetune` and `train` share; unset ones keep the config's value."""
    options = [
        click.option("--dataset", help="A TFDS name (cifar10, imagenet2012, ...) or folder:PATH."),
        click.option("--data-dir", help="The TFDS data dir (default: $TFDS_DATA_DIR)."),
        click.option("--weights", help="Initial weights: a release name, a .weights.h5, or none."),
        click.option("--variant", type=click.Choice(["bvlc", "caffenet", "chm2012"])),
        click.option("--input-size", type=int, help="224..227; default: the weights'."),
        click.option("--epochs", type=int),
        click.option("--batch-size", type=int, help="The global batch, over all replicas."),
        click.option("--lr", type=float, help="Base learning rate."),
        click.option("--momentum", type=float),
        click.option("--weight-decay", type=float),
        click.option("--decay-biases/--no-decay-biases", default=None,
                     help="Caffe decays kernels only (default)."),
        click.option("--schedule", type=click.Choice(["step", "plateau", "cosine", "constant"])),
        click.option("--step-epochs", type=int, help="step schedule: epochs per /10."),
        click.option("--milestones", callback=_epoch_list,
                     help="step schedule: x gamma at these epochs, e.g. 120,130."),
        click.option("--gamma", type=float, help="The step / plateau factor (default 0.1)."),
        click.option("--warmup-epochs", type=float),
        click.option("--head-lr-mult", type=float, help="Learning-rate multiplier of a new fc8."),
        click.option("--freeze-backbone", is_flag=True, default=None,
                     help="Train fc6..fc8 only."),
        click.option("--trainable-from",
                     type=click.Choice(WEIGHTED_LAYERS),
                     help="Freeze every layer below this one."),
        click.option("--mixed-precision", type=click.Choice(["bf16", "fp16"])),
        click.option("--model-dir", help="Checkpoints, logs and weights; rerun to resume."),
        click.option("--checkpoint-every", type=int, help="Steps between checkpoints."),
        click.option("--max-to-keep", type=int),
        click.option("--seed", type=int),
        click.option("--strategy", type=click.Choice(["auto", "one-device", "mirrored",
                                                      "multi-worker"])),
        click.option("--cpu-devices", type=int, help="Split the CPU into N logical devices."),
        click.option("--steps-per-epoch", type=int, help="Cap the steps per epoch."),
        click.option("--eval-steps", type=int, help="Cap the evaluation batches."),
        click.option("--cache-features", is_flag=True, default=None,
                     help="Frozen backbone: compute features once, train the head on them."),
        click.option("--feature-layer", type=click.Choice(["fc7", "pool5"])),
        click.option("--cache-flip/--no-cache-flip", default=None,
                     help="Also cache the mirror images' features (default: on)."),
        click.option("--strict-data", is_flag=True, default=None,
                     help="A corrupt image is an error, not skipped."),
        click.option("--ten-crop", is_flag=True, default=None, help="Validate on ten crops."),
        click.option("--log-every", type=int, help="Steps between progress lines."),
        click.option("--config", "config_path", type=click.Path(), help="A YAML config."),
        click.option("--chm-layers", help="train: a CHM layers-*.cfg to train instead of AlexNet."),
        click.option("--chm-params", help="train: its layer-params-*.cfg (lrs, momentum, decay)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _log_to_stderr():
    """The trainer's progress and notes, as plain lines on stderr."""
    import logging

    class Stderr(logging.StreamHandler):
        # Resolved at each record: click's test runner swaps sys.stderr per call.
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("alexnet_keras")
    if not any(type(h).__name__ == "Stderr" for h in logger.handlers):
        handler = Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)


def _train(command, config_path, options):
    _quiet_tensorflow()
    _log_to_stderr()
    from alexnet_keras.training import config as train_config
    from alexnet_keras.training import trainer as training

    config = train_config.resolve(command, options, config_path)
    try:
        result = training.run(config)
    except training.DivergedError as e:
        _fail(e, 1)
    if result["status"] == "interrupted":
        click.echo(f"interrupted; checkpoint saved in {result['model_dir']}; rerun to resume")
        return
    m = result["metrics"] or {}
    click.echo(
        f"done: val top-1 {float(m.get('val_top1', 0)):.4f} top-5 {float(m.get('val_top5', 0)):.4f}"
        f"; weights {result['weights']}"
    )


@cli.command()
@_training_options
@_user_errors
def finetune(config_path, **options):
    """Fine-tune AlexNet on CIFAR-10, any TFDS set or an image folder.

    fc8 becomes a head with the dataset's classes; the default initial
    weights are the converted bvlc_alexnet. Rerunning the same command
    resumes from the last checkpoint in --model-dir.
    """
    _train("finetune", config_path, options)


@cli.command()
@_training_options
@_user_errors
def train(config_path, **options):
    """Train AlexNet from scratch; defaults are the paper's recipe.

    Batch 128, lr 0.01, momentum 0.9, weight decay 5e-4, lr / 10 when the
    validation accuracy stops improving, 90 epochs. Uses every local GPU
    (MirroredStrategy); --strategy multi-worker reads TF_CONFIG.
    """
    _train("train", config_path, options)


@cli.command()
@click.option("--weights", required=True, help="A .weights.h5 or a release name.")
@click.option("--dataset", required=True, help="A TFDS name or folder:PATH.")
@click.option("--data-dir", default=None)
@click.option("--split", type=click.Choice(["eval", "train"]), default="eval", show_default=True)
@click.option("--ten-crop", is_flag=True, help="Average the softmax over ten crops.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--output", default=None, help="Where to write the confusion matrix CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_user_errors
def evaluate(weights, dataset, data_dir, split, ten_crop, batch_size, output, as_json):
    """Top-1/top-5, a per-class accuracy table and a confusion matrix file."""
    _quiet_tensorflow()
    import json

    from alexnet_keras.evaluation import evaluate as run_evaluation
    from alexnet_keras.evaluation import format_report

    result = run_evaluation(weights, dataset, data_dir=data_dir, split=split, ten_crop=ten_crop,
                            batch_size=batch_size, output=output)  # fmt: skip
    click.echo(json.dumps(result, indent=2) if as_json else format_report(result))


@cli.command()
@click.option(
    "--weights", default="bvlc_alexnet", show_default=True, help="A .weights.h5 or a release name."
)
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--top", type=click.IntRange(min=1), default=5, show_default=True, help="Labels per image."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--ten-crop", is_flag=True, help="Average the softmax over ten crops.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@_user_errors
def predict(weights, images, top, as_json, ten_crop, batch_size):
    """Print the top labels and scores of each image.

    IMAGES are JPEG/PNG/BMP/GIF files or folders (searched recursively).
    The preprocessing is the weights' own: shorter side 256, the centre crop
    (or ten crops), colour order and mean.
    """  # fmt: skip
    _quiet_tensorflow()
    import json

    from alexnet_keras.prediction import format_predictions, predict_files

    results = predict_files(weights, images, top=top, ten_crop=ten_crop, batch_size=batch_size,
                            progress=sys.stderr)  # fmt: skip
    click.echo(json.dumps(results, indent=2) if as_json else format_predictions(results))


@cli.command()
@click.option("--weights", required=True, help="A .weights.h5 or a release name.")
@click.option(
    "--output",
    required=True,
    type=click.Path(),
    help="The version folder TF Serving loads: <base>/<model_name>/<version>; "
    "a .tflite file with --format tflite.",
)
@click.option(
    "--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Labels per response."
)
@click.option(
    "--input-size",
    type=click.IntRange(224, 227),
    default=None,
    help="The crop size (224..227); default: the weights'.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["saved_model", "tflite"]),
    default="saved_model",
    show_default=True,
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@_user_errors
def export(weights, output, top_k, input_size, fmt, overwrite):
    """Export a SavedModel for TF Serving that takes encoded image bytes.

    Signatures: serving_default (image_bytes: JPEG/PNG/GIF/BMP/WebP strings
    of any size) and predict_images (float32 RGB 0..255 images). Both decode,
    resize, crop and normalise in the graph, and return probabilities and the
    top-k indices, scores and labels. --format tflite writes a LiteRT model
    that takes RGB pixels resized to a shorter side of 256.
    """  # fmt: skip
    _quiet_tensorflow()
    from alexnet_keras.serving.export import export_model

    report = export_model(weights, output, top_k=top_k, input_size=input_size, fmt=fmt,
                          overwrite=overwrite)  # fmt: skip
    click.echo(str(report))


@cli.group()
def chm():
    """The CHM 2012 cuda-convnet release: its cfg "parameter files"."""


@chm.command("summary")
@click.argument("layers", type=click.Path())
@click.argument("params", type=click.Path(), required=False)
@click.option(
    "--image-size",
    type=click.IntRange(min=1),
    default=None,
    help="The input side; default: 224 for the ImageNet nets, 32 for CIFAR.",
)
@_user_errors
def chm_summary(layers, params, image_size):
    """Print a cfg net's layer table and, with PARAMS, its training config.

    LAYERS is a layer definition file (layers-145.cfg), PARAMS its layer
    parameter file (layer-params-145.cfg). Output sizes, weight shapes and
    parameter counts follow cuda-convnet; neuron= keys become their own
    <name>_neuron layers, as in cuda-convnet.
    """  # fmt: skip
    from alexnet_keras.cuda_convnet import cfg_net as chm_cfg

    net = chm_cfg.read_net(layers, params, image_size=image_size)
    click.echo(chm_cfg.summary(net, net.config))


def main():  # pragma: no cover - console-script entry
    cli(prog_name="alexnet-keras")
