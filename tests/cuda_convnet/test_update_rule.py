"""Training a CHM cfg net with its params file, checked against cuda-convnet's update rule.

The reference is written from cuda-convnet 1's semantics (`FCLayer::bpropWeights`
adds `eps / numCases * prevActs^T * v` to `weightsInc` after scaling it by
`mom`; `Weights::update` adds `-wc * eps * W`, then `W += weightsInc`; biases
are weights with `wc = 0`; `v` is the gradient of `coeff * log p(label)`),
in float64 numpy, on the batches the run itself read.
"""

import builtins
import csv
import hashlib
import io
import json
import os
import pathlib
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from alexnet_keras.cuda_convnet import update_rule as convnet_training
from alexnet_keras.cuda_convnet.cfg_net import read_net
from alexnet_keras.cuda_convnet.cfg_weights import load_mirror
from alexnet_keras.cuda_convnet.cifar_provider import MemoryProvider
from alexnet_keras.data import open_dataset
from alexnet_keras.training import config as train_config
from alexnet_keras.training.run import run
from alexnet_keras.training.schedules import Schedule
from tests.conftest import SHARED, require

RELEASE = SHARED / "data" / "chm-release"
EXAMPLES = RELEASE / "example-layers"
MINI = SHARED / "data" / "cifar10-mini"

# A two-input fc, so per-input epsW / wc reach different rows of one kernel.
LAYERS = """\
[data]
type=data
dataIdx=0

[labels]
type=data
dataIdx=1

[pool]
type=pool
pool=avg
inputs=data
start=0
sizeX=4
stride=4
outputsX=0
channels=3

[mag]
type=neuron
inputs=pool
neuron=abs

[fc10]
type=fc
outputs=10
inputs=pool,mag
initW=0.01,0.02
initB=0.5

[probs]
type=softmax
inputs=fc10

[logprob]
type=cost.logreg
inputs=labels,probs
"""
PARAMS = """\
# Reduce all learning rates by factor of 10 after 1 epochs.

[fc10]
epsW=0.001,0.0004
epsB=0.002
momW=0.9,0.9
momB=0.9
wc=0.004,0.5

[logprob]
coeff=2
"""


def write_cfg(folder, layers=LAYERS, params=PARAMS):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "layers-tiny.cfg").write_text(textwrap.dedent(layers))
    (folder / "layer-params-tiny.cfg").write_text(textwrap.dedent(params))
    return folder / "layers-tiny.cfg", folder / "layer-params-tiny.cfg"


def features(x):
    """The fc's two inputs in the Keras model's row order: 4x4 average pools (NHWC), and |.|."""
    pooled = x.reshape(len(x), 8, 4, 8, 4, 3).mean(axis=(2, 4)).reshape(len(x), -1)
    return pooled, np.abs(pooled)


def cuda_convnet_steps(kernel, bias, batches, rates):
    """cuda-convnet 1's updates of a two-input fc + softmax + logreg(coeff=2), in float64."""
    eps_w, eps_b, mom, wc, coeff = (0.001, 0.0004), 0.002, 0.9, (0.004, 0.5), 2.0
    rows = kernel.shape[0] // 2
    weights = [kernel[:rows].astype(np.float64), kernel[rows:].astype(np.float64)]
    b = bias.astype(np.float64)
    inc_w, inc_b = [np.zeros_like(w) for w in weights], np.zeros_like(b)
    for (x, y), rate in zip(batches, rates, strict=True):
        acts = features(x.astype(np.float64))
        logits = acts[0] @ weights[0] + acts[1] @ weights[1] + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        v = coeff * (np.eye(10)[y] - p)  # d(coeff * log p_label) / d logits, per case
        n = len(y)
        for i in range(2):
            inc_w[i] = mom * inc_w[i] + (rate * eps_w[i] / n) * (acts[i].T @ v)
            inc_w[i] += -wc[i] * rate * eps_w[i] * weights[i]
            weights[i] += inc_w[i]
        inc_b = mom * inc_b + (rate * eps_b / n) * v.sum(0)
        b += inc_b
    return np.concatenate(weights), b


def test_recipe_reads_the_stated_schedule_and_the_momentum():
    require(EXAMPLES)
    r = convnet_training.recipe(read_net(EXAMPLES / "layers-18pct.cfg",
                                         EXAMPLES / "layer-params-18pct.cfg"))  # fmt: skip
    assert (r["schedule"], r["milestones"], r["gamma"], r["epochs"]) == ("step", [120, 130], 0.1,
                                                                          140)  # fmt: skip
    r = convnet_training.recipe(read_net(EXAMPLES / "layers-80sec.cfg",
                                         EXAMPLES / "layer-params-80sec.cfg"))  # fmt: skip
    assert (r["schedule"], r["milestones"], r["epochs"], r["momentum"]) == ("constant", [], None,
                                                                             0.9)  # fmt: skip


@pytest.mark.parametrize(
    "params, message",
    [
        (PARAMS.replace("momB=0.9", "momB=0.5"), "momenta [0.5, 0.9]"),
        (PARAMS.replace("momB=0.9", "momB=0.9\nwball=1,0"), "wball"),
        (PARAMS.replace("epsB=0.002\n", ""), "no epsB="),
    ],
)
def test_recipe_refuses_what_the_trainer_cannot_follow(tmp_path, params, message):
    layers, params_path = write_cfg(tmp_path, params=params)
    with pytest.raises(ValueError, match="layer-params-tiny.cfg") as e:
        convnet_training.recipe(read_net(layers, params_path))
    assert message in str(e.value)


def test_the_release_gc_net_is_refused_for_its_two_momenta():
    require(EXAMPLES)
    with pytest.raises(ValueError, match="momenta"):
        convnet_training.recipe(
            read_net(EXAMPLES / "layers.gc.cfg", EXAMPLES / "layer-params.gc.cfg")
        )


def test_factors_are_the_params_files_per_layer_and_per_input_values(tmp_path):
    require(EXAMPLES)
    net = read_net(EXAMPLES / "layers-80sec.cfg", EXAMPLES / "layer-params-80sec.cfg")
    model, _ = convnet_training.build(net, 10, 0)
    factors = dict(zip((v.path for v in model.trainable_variables),
                       convnet_training.gradient_factors(model, net), strict=True))  # fmt: skip
    assert factors["conv1/kernel"] == (0.001, 0.004)
    assert factors["conv3/bias"] == (0.002, 0.0)
    assert factors["fc64/kernel"] == (0.001, 0.03)
    net = read_net(*write_cfg(tmp_path))
    model, _ = convnet_training.build(net, 10, 0)
    (mult, decay), (bias_mult, bias_decay) = convnet_training.gradient_factors(model, net)
    rows = 8 * 8 * 3
    assert mult.shape == (2 * rows, 1) and decay.shape == (2 * rows, 1)
    np.testing.assert_allclose(mult[[0, rows - 1, rows, -1], 0], [0.002, 0.002, 0.0008, 0.0008])
    np.testing.assert_allclose(decay[[0, rows], 0], [0.002, 0.25])  # wc / coeff
    assert (bias_mult, bias_decay) == (0.004, 0.0)


def test_init_follows_initw_per_input_and_initb(tmp_path):
    _, full = convnet_training.build(read_net(*write_cfg(tmp_path)), 10, seed=3)
    kernel, bias = full.get_layer("fc10").get_weights()
    rows = 8 * 8 * 3
    assert abs(kernel[:rows].std() - 0.01) < 0.001 and abs(kernel[rows:].std() - 0.02) < 0.002
    assert (bias == 0.5).all()


def test_a_run_equals_cuda_convnets_update_rule(tmp_path):
    """Three steps (momentum carried, lr dropped x0.1 at the stated epoch) vs the numpy rule."""
    require(MINI)
    layers, params = write_cfg(tmp_path / "cfg")
    config = train_config.resolve("train", {
        "dataset": f"folder:{MINI}", "chm_layers": str(layers), "chm_params": str(params),
        "batch_size": 50, "epochs": 2, "steps_per_epoch": 2, "eval_steps": 1,
        "model_dir": str(tmp_path / "run"), "log_every": 1, "seed": 4})  # fmt: skip
    assert (config.milestones, config.epochs, config.lr) == ((1,), 2, 1.0)
    _, full = convnet_training.build(read_net(layers, params), 10, seed=4)
    kernel, bias = full.get_layer("fc10").get_weights()
    result = run(config)
    assert result["status"] == "finished"
    trained, meta = load_mirror(result["weights"])
    splits, _ = open_dataset(f"folder:{MINI}")
    provider = MemoryProvider(splits, "mini", image_size=32, batch_size=50, seed=4)
    batches = [b for e in (0, 1) for b in list(provider.train(e).as_numpy_iterator())[:2]]
    want_w, want_b = cuda_convnet_steps(kernel, bias, batches, [1, 1, 0.1, 0.1])
    got_w, got_b = trained.get_layer("fc10").get_weights()
    assert np.abs(got_w - want_w).max() / np.abs(want_w).max() < 1e-5
    assert np.abs(got_b - want_b).max() / np.abs(want_b).max() < 1e-5
    np.testing.assert_allclose(np.array(meta["mean"]), provider.mean.transpose(2, 0, 1), atol=1e-4)
    assert meta["class_names"][0] == "airplane"


def test_a_resumed_cfg_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    require(MINI)
    layers, params = write_cfg(tmp_path / "cfg")

    def train(model_dir, epochs):
        config = train_config.resolve("train", {
            "dataset": f"folder:{MINI}", "chm_layers": str(layers), "chm_params": str(params),
            "batch_size": 40, "epochs": epochs, "steps_per_epoch": 3, "eval_steps": 1,
            "model_dir": str(model_dir), "seed": 1})  # fmt: skip
        return run(config)

    straight = train(tmp_path / "a", 2)
    train(tmp_path / "b", 1)
    resumed = train(tmp_path / "b", 2)  # epochs may grow: it continues from epoch 2
    assert resumed["status"] == "finished"
    a, _ = load_mirror(straight["weights"])
    b, _ = load_mirror(resumed["weights"])
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_memory_provider_is_mean_subtracted_and_resumable():
    require(MINI)
    splits, _ = open_dataset(f"folder:{MINI}")
    provider = MemoryProvider(splits, "mini", image_size=32, batch_size=16, seed=1)
    decoded = splits["train"].dataset().as_numpy_iterator()
    images = np.stack([x for x, _ in decoded]).astype(np.float64)
    np.testing.assert_allclose(provider.mean, images.mean(0), atol=1e-4)
    full = list(provider.train(2).as_numpy_iterator())
    resumed = list(provider.train(2, skip_batches=5).as_numpy_iterator())
    assert len(full) == 200 // 16 and len(resumed) == len(full) - 5
    np.testing.assert_array_equal(full[5][0], resumed[0][0])
    assert not np.array_equal(full[0][1], list(provider.train(3).as_numpy_iterator())[0][1])
    x, _ = full[0]
    assert abs(float(x.mean())) < 20 and x.min() < -50  # 0..255 scale, not divided
    assert sum(len(y) for _, y in provider.eval().as_numpy_iterator()) == 100


def test_memory_provider_refuses_images_of_another_size():
    require(MINI)
    splits, _ = open_dataset(f"folder:{MINI}")
    with pytest.raises(ValueError, match="mini: images are 32x32x3; this net reads 24x24x3"):
        MemoryProvider(splits, "mini", image_size=24)


def test_memory_provider_names_the_first_odd_size_in_a_mixed_folder(tmp_path):
    import tensorflow as tf

    for split in ("train", "test"):
        for label, side in (("a", 32), ("b", 40)):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                image = tf.fill((side, side, 3), tf.constant(i * 40, tf.uint8))
                (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    splits, _ = open_dataset(f"folder:{tmp_path}")
    with pytest.raises(ValueError, match="images are 40x40x3; this net reads 32x32x3"):
        MemoryProvider(splits, "mixed", image_size=32)


def test_milestones_drop_the_rate_at_each_stated_epoch():
    config = train_config.resolve("train", {
        "dataset": "x", "model_dir": "m", "lr": 1.0, "schedule": "step", "milestones": [3, 5],
        "gamma": 0.1, "warmup_epochs": 0, "step_epochs": 30, "epochs": 8})  # fmt: skip
    schedule = Schedule(config, steps_per_epoch=10)
    assert [schedule(s) for s in (0, 29, 30, 49, 50, 79)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--weight-decay", "0.1"], "--weight-decay: not for a --chm-layers run"),
        (["--variant", "bvlc"], "--variant: not for a --chm-layers run"),
        (["--mixed-precision", "bf16", "--ten-crop"], "--ten-crop, --mixed-precision: not for"),
    ],
)
def test_cli_refuses_options_the_cfg_sets(tmp_path, extra, message):
    layers, params = write_cfg(tmp_path)
    args = ["train", "--dataset", f"folder:{MINI}", "--chm-layers", str(layers),
            "--chm-params", str(params), "--model-dir", str(tmp_path / "r"), *extra]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_cli_errors_for_half_a_cfg_pair_finetune_and_unbuildable_nets(tmp_path):
    require(EXAMPLES)
    layers, params = write_cfg(tmp_path)
    runner, base = CliRunner(), ["--dataset", f"folder:{MINI}", "--model-dir", str(tmp_path / "r")]
    missing = str(tmp_path / "no.cfg")
    rand, rand80 = tmp_path / "rand.cfg", EXAMPLES / "layer-params-80sec.cfg"
    rand.write_text((EXAMPLES / "layers-80sec.cfg").read_text().replace("pool=avg", "pool=rand"))
    cases = [
        (["train", *base, "--chm-layers", str(layers)], "go together"),
        (["finetune", *base, "--chm-layers", str(layers), "--chm-params", str(params)],
         "use `train`"),
        (["train", *base, "--chm-layers", missing, "--chm-params", str(params)],
         "no.cfg: no such file"),
        (["train", *base, "--chm-layers", str(rand), "--chm-params", str(rand80)],
         "rand.cfg: layer 'pool2' uses rand pooling"),
        (["train", *base, "--milestones", "3,x"], "expected epochs such as 120,130"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output


def test_cli_trains_the_release_80sec_net_for_a_few_steps(tmp_path):
    require(EXAMPLES)
    require(MINI)
    args = ["train", "--dataset", f"folder:{MINI}", "--chm-layers",
            str(EXAMPLES / "layers-80sec.cfg"), "--chm-params",
            str(EXAMPLES / "layer-params-80sec.cfg"), "--epochs", "1", "--steps-per-epoch", "3",
            "--model-dir", str(tmp_path / "r")]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "done: val top-1" in result.output
    model, meta = load_mirror(tmp_path / "r" / "model.weights.h5")
    assert model.output_shape == (None, 10) and meta["layers_cfg"]["name"] == "layers-80sec.cfg"
    assert "lr: 1.0" in (tmp_path / "r" / "config.yaml").read_text()
    weights = str(tmp_path / "r" / "model.weights.h5")
    evaluated = CliRunner().invoke(
        cli, ["evaluate", "--weights", weights, "--dataset", f"folder:{MINI}", "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    trained = next(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    top1 = json.loads(evaluated.output[evaluated.output.index("{") :])["top1"]
    assert top1 == pytest.approx(float(trained["val_top1"]), abs=1e-9)
    refused = CliRunner().invoke(
        cli, ["evaluate", "--weights", weights, "--dataset", f"folder:{MINI}", "--ten-crop"]
    )
    assert refused.exit_code == 2 and "--ten-crop and --protocol do not apply" in refused.output


def test_a_cfg_run_reads_and_parses_each_cfg_file_once(tmp_path, monkeypatch):
    """`train --chm-layers L --chm-params P`: L and P are opened once and parsed once in all."""
    from alexnet_keras.cuda_convnet import cfg_net

    require(MINI)
    layers, params = write_cfg(tmp_path / "cfg")
    opens = {layers.resolve(): 0, params.resolve(): 0}
    parses = []
    real_open, real_read_net = io.open, cfg_net.read_net

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and pathlib.Path(file).resolve() in opens:
            opens[pathlib.Path(file).resolve()] += 1
        return real_open(file, *args, **kwargs)

    def counting_read_net(*args, **kwargs):
        parses.append(args)
        return real_read_net(*args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)  # pathlib's read_bytes/read_text
    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(cfg_net, "read_net", counting_read_net)
    args = ["train", "--dataset", f"folder:{MINI}", "--chm-layers", str(layers), "--chm-params",
            str(params), "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "50",
            "--eval-steps", "1", "--model-dir", str(tmp_path / "r")]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert opens == {layers.resolve(): 1, params.resolve(): 1}
    assert len(parses) == 1
    monkeypatch.undo()
    _, meta = load_mirror(tmp_path / "r" / "model.weights.h5")  # it stores the texts it trained
    for key, path in (("layers_cfg", layers), ("params_cfg", params)):
        assert meta[key]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert meta[key]["text"] == path.read_text()
