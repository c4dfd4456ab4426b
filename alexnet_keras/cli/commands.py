"""The commands that inspect, convert and use weights: summary, convert, evaluate, predict,
export, chm summary. Each parses its options, calls one library function and prints."""

import sys

import click

from alexnet_keras.cli.app import cli, fail, offline_option, quiet_tensorflow, user_errors
from alexnet_keras.variants import INPUT_SIZES


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
@user_errors
def summary(variant, input_size, classes):
    """Print the layer table: name, type, output shape, parameters.

    It shows which AlexNet you have: the layer order, where the LRN sits, the
    grouped convolutions and the padding that keeps fc6 at 6x6x256.
    """
    quiet_tensorflow()
    from alexnet_keras.summary import layer_table

    click.echo(layer_table(variant=variant, input_size=input_size, classes=classes))


def semantics_option(fn):
    """`--convnet-semantics 2011|2012` of the commands that read a cfg net."""
    from alexnet_keras.cuda_convnet.era import HELP, SEMANTICS

    return click.option("--convnet-semantics", type=click.Choice(SEMANTICS), default=None,
                        help=HELP)(fn)  # fmt: skip


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
@semantics_option
@offline_option
@user_errors
def convert(src, output, fmt, variant, prototxt, verify_images, verify_count, to, class_names,
            meta, layers_cfg, params_cfg, convnet_semantics):  # fmt: skip
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
    quiet_tensorflow()  # a cfg model and --verify-images go through Keras
    from alexnet_keras.converters import convert as convert_release

    report = convert_release(src, output, fmt=fmt, variant=variant, prototxt=prototxt, to=to,
                             class_names=class_names, meta=meta, layers_cfg=layers_cfg,
                             params_cfg=params_cfg, verify_images=verify_images,
                             verify_count=verify_count, semantics=convnet_semantics)  # fmt: skip
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(str(report))
    if report.failure:
        fail(report.failure, 1)


@cli.command()
@click.option("--weights", required=True, help="A .weights.h5 or a release name.")
@click.option(
    "--dataset",
    required=True,
    help="A TFDS name, folder:PATH or imagenet-val:PATH (with --labels).",
)
@click.option("--data-dir", default=None)
@click.option(
    "--labels",
    multiple=True,
    help="imagenet-val: Caffe's val.txt, the devkit's ILSVRC2012_validation_ground_truth.txt "
    "(its meta.mat or map_clsloc.txt beside it, or given as a second --labels) or Kaggle's "
    "LOC_val_solution.csv.",
)
@click.option(
    "--protocol",
    type=click.Choice(["bvlc", "shorter-side"]),
    default=None,
    help="How images reach 256 before the crop: bvlc warps to 256x256 (Caffe's published "
    "accuracy), shorter-side keeps the aspect ratio. Default: the weights' own.",
)
@click.option("--split", type=click.Choice(["eval", "train"]), default="eval", show_default=True)
@click.option("--ten-crop", is_flag=True, help="Average the softmax over ten crops.")
@click.option("--multiview-era", type=click.Choice(["2011", "2012"]), default=None,
              help="A cfg net trained on crops: the multiview set of that cuda-convnet (2011: 9 "
              "views, 2012: 10). Default: the one its run recorded.")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--output", default=None, help="Where to write the confusion matrix CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@offline_option
@user_errors
def evaluate(weights, dataset, data_dir, labels, protocol, split, ten_crop, multiview_era,
             batch_size, output, as_json):  # fmt: skip
    """Top-1/top-5, a per-class accuracy table and a confusion matrix file.

    Progress with an ETA goes to stderr; the report to stdout.
    """
    quiet_tensorflow()
    import json

    from alexnet_keras.evaluation import evaluate as run_evaluation
    from alexnet_keras.evaluation import format_report

    result = run_evaluation(weights, dataset, data_dir=data_dir, split=split, ten_crop=ten_crop,
                            batch_size=batch_size, output=output, labels=list(labels) or None,
                            protocol=protocol, multiview_era=multiview_era,
                            progress=sys.stderr)  # fmt: skip
    click.echo(json.dumps(result, indent=2) if as_json else format_report(result))


@cli.command()
@click.option(
    "--weights", default="bvlc_alexnet", show_default=True,
    help="A .weights.h5, a release name (imagenet = bvlc_alexnet) or a legacy file (.npy, "
    ".caffemodel, cuda-convnet checkpoint).",
)  # fmt: skip
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--top", type=click.IntRange(min=1), default=5, show_default=True, help="Labels per image."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--ten-crop", is_flag=True, help="Average the softmax over ten crops.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@offline_option
@user_errors
def predict(weights, images, top, as_json, ten_crop, batch_size):
    """Print the top labels and scores of each image.

    IMAGES are JPEG/PNG/BMP/GIF/WebP files or folders (searched recursively).
    The preprocessing is the weights' own: to 256 by their protocol (a
    256x256 warp for Caffe's releases, else the shorter side), the centre
    crop (or ten crops), colour order and mean.
    """  # fmt: skip
    quiet_tensorflow()
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
    "a .tflite file with --format tflite, a .onnx file with --format onnx.",
)
@click.option(
    "--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Labels per response."
)
@click.option(
    "--input-size",
    type=click.IntRange(INPUT_SIZES[0], INPUT_SIZES[-1]),
    default=None,
    help="The crop size (224..227); default: the weights'.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["saved_model", "tflite", "onnx"]),
    default="saved_model",
    show_default=True,
    help="saved_model: TF Serving, image bytes in (232.6 MiB). tflite: LiteRT (ai-edge-litert), "
    "RGB pixels in, checked against the TF graph at export (within 1e-4). onnx: ONNX Runtime "
    "and OpenVINO, equal to the float64 Caffe / cuda-convnet references within 1e-4 relative "
    "(233 MiB).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option(
    "--warmup/--no-warmup",
    default=True,
    show_default=True,
    help="SavedModel: write TF Serving's warm-up requests "
    "(assets.extra/tf_serving_warmup_requests), replayed before the version serves.",
)
@click.option(
    "--quantize",
    type=click.Choice(["int8", "bf16"]),
    default=None,
    help="ONNX only: int8 (ONNX Runtime static QDQ, calibrated; 0.25x the file, 1.8x ONNX "
    "Runtime / 4.4x OpenVINO fp32 speed at batch 1 here) or bf16 weights (0.5x the file); "
    "written only if top-1 agrees with fp32 on held-out images (see --force).",
)
@click.option(
    "--calibration",
    default=None,
    metavar="DIR|DATASET[:SPLIT]",
    help="With --quantize: an image folder (<class>/ subfolders, or train/ and test/) or a "
    "dataset (cifar10, folder:PATH); its train part calibrates, its held-out part "
    "measures the agreement.",
)
@click.option(
    "--force", is_flag=True, help="Write a quantized model even below 99% top-1 agreement."
)
@offline_option
@user_errors
def export(
    weights, output, top_k, input_size, fmt, overwrite, warmup, quantize, calibration, force
):
    """Export a SavedModel for TF Serving (image bytes in), or a LiteRT or ONNX model.

    Signatures: serving_default (image_bytes: JPEG/PNG/GIF/BMP/WebP strings
    of any size) and predict_images (float32 RGB 0..255 images). Both decode,
    resize, crop and normalise in the graph, and return probabilities and the
    top-k indices, scores and labels. --format tflite writes a LiteRT model
    that takes RGB pixels resized to a shorter side of 256, after running it
    on the LiteRT runtime (ai-edge-litert) against the TensorFlow graph;
    --format onnx writes an ONNX model (ONNX Runtime, OpenVINO) that takes
    RGB pixels resized as the weights' protocol says; --quantize int8|bf16
    shrinks the ONNX model after the agreement gate.
    """  # fmt: skip
    quiet_tensorflow()
    from alexnet_keras.serving.export import export_model

    report = export_model(weights, output, top_k=top_k, input_size=input_size, fmt=fmt,
                          overwrite=overwrite, warmup=warmup, quantize=quantize,
                          calibration=calibration, force=force)  # fmt: skip
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
@semantics_option
@user_errors
def chm_summary(layers, params, image_size, convnet_semantics):
    """Print a cfg net's layer table and, with PARAMS, its training config.

    LAYERS is a layer definition file (layers-145.cfg), PARAMS its layer
    parameter file (layer-params-145.cfg). Output sizes, weight shapes and
    parameter counts follow cuda-convnet; neuron= keys become their own
    <name>_neuron layers, as in cuda-convnet.
    """  # fmt: skip
    from alexnet_keras.cuda_convnet.cfg_net import read_net
    from alexnet_keras.cuda_convnet.cfg_summary import summary

    net = read_net(layers, params, image_size=image_size, semantics=convnet_semantics)
    click.echo(summary(net, net.config))
