"""CHM's learning-rate schedules, checked against a numpy transcription of the release's `lr.cu`.

`ChmLrs` below is written from the CHM release's `src/lr.cu` (`make`
l.12-33, `getRate` l.43-46, LinearLRS l.85-92, ExpLRS l.99-107,
DiscreteExpLRS l.132-151, JumpyDiscreteExpLRS l.158-186) and `weights.cu`
l.146-197 (one `getRate` for the gradient step, another for the `wc` step),
not from `lr_schedule.py`. The noise's N(0, 1) draws follow the documented
contract of `RateSchedule.draws`: `default_rng([seed, 0x6C72, step])`, one
`(gradient, decay)` pair per weight matrix, matrices in variable order.
"""

import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from alexnet_keras.cuda_convnet import update_rule
from alexnet_keras.cuda_convnet.cfg_net import read_net, training_config
from alexnet_keras.cuda_convnet.cfg_params import parse_schedule
from alexnet_keras.cuda_convnet.cfg_weights import load_mirror
from alexnet_keras.cuda_convnet.cifar_provider import MemoryProvider
from alexnet_keras.cuda_convnet.lr_schedule import LrSchedule, Matrix, RateSchedule, read
from alexnet_keras.data import open_dataset
from alexnet_keras.training import config as train_config
from alexnet_keras.training.run import run
from tests.conftest import SHARED, require
from tests.cuda_convnet.test_update_rule import PARAMS, features, write_cfg

RELEASE = SHARED / "data" / "chm-release"
MINI = SHARED / "data" / "cifar10-mini"


class ChmLrs:
    """lr.cu's schedule classes for one weight matrix with base rate `base`, in float64."""

    def __init__(self, kind, base, tgt=1.0, noise=0.0, steps=1):
        self.kind, self.base, self.noise = kind, base, noise
        self.final = base / tgt
        # ExpLRS: _pow = baseRate == 0 ? 1 : log(finalRate) / log(baseRate) - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            self.pow = 1.0 if base == 0 else np.log(self.final) / np.log(base) - 1
        self.rates = [self.exp(i / (steps - 1)) for i in range(steps - 1)] + [self.final]

    def exp(self, p):
        with np.errstate(invalid="ignore"):  # C: pow(1, nan) is 1
            return float(np.power(np.float64(self.base), 1.0 + p * self.pow))

    def _get_rate(self, p):
        if self.kind == "default":
            return self.base
        if self.kind == "linear":
            return self.base * (1 - p) + self.final * p
        if self.kind == "exp":
            return self.exp(p)
        n = len(self.rates)
        if self.kind == "dexp":
            for i in range(n):
                if p <= (i + 1) / n:
                    return self.rates[i]
            return self.rates[-1]
        idx = 0
        for i in range(n):
            if p <= (i + 1) / n:
                idx = i
                break
        mid = (idx + 0.5) / n
        if idx > 0 and 0.2 < p < 0.9 and p > mid:
            return math.sqrt(self.rates[idx] * self.rates[idx - 1])
        return self.rates[idx]

    def get_rate(self, p, z):
        r = self._get_rate(p)
        return r * (1 + abs(z) * self.noise) if self.noise > 0 else r


PROGRESS = sorted({*np.linspace(0, 1, 41), *(i / n for n in range(1, 6) for i in range(n + 1)),
                   *(((i + 0.5) / n) for n in range(1, 6) for i in range(n)), 0.2, 0.9,
                   0.2 + 1e-9, 0.9 - 1e-9, 0.5 + 1e-9, 1 / 3 + 1e-12})  # fmt: skip
CASES = [
    ("default", {}),
    ("linear", {"tgt": 1000.0}),
    ("linear", {"tgt": 1.0}),
    ("exp", {"tgt": 1000.0}),
    ("exp", {"tgt": 0.5}),
    ("dexp", {"tgt": 250.0, "steps": 4}),
    ("dexp", {"tgt": 10.0, "steps": 2}),
    ("dexp", {"tgt": 500.0, "steps": 5}),
    ("dexp", {"tgt": 10.0, "steps": 1}),
    ("jdexp", {"tgt": 1000.0, "steps": 4}),
    ("jdexp", {"tgt": 500.0, "steps": 5}),
    ("jdexp", {"tgt": 8.0, "steps": 3}),
    ("jdexp", {"tgt": 100.0, "steps": 10}),  # intervals inside (0.2, 0.9) and at its edges
]


@pytest.mark.parametrize("kind, p", CASES)
@pytest.mark.parametrize("base", [0.01, 0.001, 0.5, 1.0, 2.0])
def test_each_type_follows_lr_cu(kind, p, base):
    schedule = LrSchedule(kind, p.get("tgt", 1.0), 0.0, p.get("steps", 1))
    chm = ChmLrs(kind, base, **p)
    for progress in PROGRESS:
        want = chm.get_rate(progress, 0.0) / base
        assert schedule.factor(base, progress) == pytest.approx(want, rel=1e-12, abs=0), progress


def test_the_exp_family_at_a_base_of_one_keeps_cs_pow_quirk():
    # pow(1, x) is 1 for any x in C, so exp at epsW=1 never decays; dexp only at its last step.
    assert LrSchedule("exp", 100.0).factor(1.0, 0.7) == 1.0
    assert LrSchedule("dexp", 100.0, 0.0, 4).factor(1.0, 0.7) == 1.0
    assert LrSchedule("dexp", 100.0, 0.0, 4).factor(1.0, 0.9) == pytest.approx(0.01)
    assert LrSchedule("exp", 100.0).factor(0.01, 0.5) == pytest.approx(0.1)


def test_noise_multiplies_each_call_by_one_plus_abs_normal_per_matrix():
    """Two matrices of one kernel (per-input rows), a bias: draws per (matrix, call), seeded."""
    w = LrSchedule("dexp", 250.0, 0.7, 4)
    b = LrSchedule("linear", 10.0, 2.0)
    variables = [([Matrix(w, 0.01, 3), Matrix(w, 0.002, 2)], (5, 1)), ([Matrix(b, 0.02)], ())]
    rates = RateSchedule(variables, seed=11)
    for step, progress in ((0, 0.0), (7, 0.35), (12, 0.6), (19, 0.95)):
        z = np.random.default_rng([11, 0x6C72, step]).standard_normal((3, 2))
        kernel, bias = rates(progress, step)
        assert kernel.shape == (2, 5, 1) and bias.shape == (2,) and kernel.dtype == np.float32
        for i, (base, rows) in enumerate(((0.01, slice(0, 3)), (0.002, slice(3, 5)))):
            chm = ChmLrs("dexp", base, 250.0, 0.7, 4)
            for call in (0, 1):  # gradient step, wc step
                want = chm.get_rate(progress, z[i, call]) / base
                np.testing.assert_allclose(kernel[call, rows, 0], want, rtol=1e-6)
        chm = ChmLrs("linear", 0.02, 10.0, 2.0)
        np.testing.assert_allclose(bias, [chm.get_rate(progress, z[2, c]) / 0.02 for c in (0, 1)],
                                   rtol=1e-6)  # fmt: skip
        # A pure function of (seed, step): asked again, or by a resumed run, the same.
        np.testing.assert_array_equal(RateSchedule(variables, seed=11)(progress, step)[0], kernel)
    assert not np.array_equal(rates(0.5, 1)[0], rates(0.5, 2)[0])
    assert not np.array_equal(rates(0.5, 1)[0], RateSchedule(variables, seed=12)(0.5, 1)[0])


def _release_schedules():
    """Every `sched*=value` line of the release's cfg files: `(file, line, key, value)`."""
    found = []
    for path in sorted(RELEASE.rglob("*.cfg")):
        lines = path.read_text(errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            m = re.match(r"\s*(sched\w*)\s*[=:]\s*(.*?)\s*$", line)
            if m:
                found.append((path, number, m.group(1), m.group(2)))
    return found


def test_every_schedule_in_the_release_is_read():
    require(RELEASE)
    found = _release_schedules()
    assert len(found) >= 1000  # 1122 lines in 2026's copy
    kinds, notes = {}, 0
    for path, number, key, value in found:
        assert key in ("sched", "schedW", "schedB"), (path, number)
        schedule, note = read(parse_schedule(value))
        kinds[schedule.kind] = kinds.get(schedule.kind, 0) + 1
        notes += note is not None
    assert set(kinds) == {"default", "linear", "exp", "dexp", "jdexp"}
    assert notes > 400  # the positional forms of older parsers
    noisy = read(parse_schedule("linear[1,1]"))[0]
    assert (noisy.kind, noisy.tgt_factor, noisy.noise_stdev) == ("linear", 1.0, 1.0)
    assert read(parse_schedule("dexp[10,2]"))[0] == LrSchedule("dexp", 10.0, 0.0, 2)
    named = read(parse_schedule("dexp[tgtFactor=10,noiseStdev=0,numSteps=2]"))
    assert named == (LrSchedule("dexp", 10.0, 0.0, 2), None)


def test_the_noisylr_file_is_read_with_a_note_naming_file_and_lines():
    require(RELEASE)
    cifar = RELEASE / "layers-cifar"
    cfg = training_config(cifar / "layers-18pct.cfg", cifar / "layer-params-18pct-noisylr.cfg")
    (note,) = [n for n in cfg["notes"] if "linear[1,1]" in n]
    assert note.startswith("layer-params-18pct-noisylr.cfg: schedW=linear[1,1] in conv1 (l.12)")
    assert "layer.py (l.69-93) rejects" in note and "linear[tgtFactor=1,noiseStdev=1]" in note
    old = training_config(
        RELEASE / "layers/layers-153.cfg", RELEASE / "layers/layer-params-153.cfg"
    )
    assert old["layers"]["conv1a"]["schedB"]["text"] == "linear[1000]"
    assert any("never reads sched=" in n and "fc1000 (l.134)" in n for n in old["notes"])


@pytest.mark.parametrize(
    "line, message",
    [
        ("schedW=tanh[10,0]", "schedW= names no schedule type CHM builds"),
        ("schedW=dexp[10,0,2.5]", "numSteps must be a whole number in 1..1000, not 2.5"),
        ("schedW=jdexp[10,0,1000000000]", "numSteps must be a whole number in 1..1000"),
        ("schedW=exp[1e400]", "tgtFactor must be a positive number, not inf"),
        ("schedW=dexp[1,2,3,4]", "gives 4 value(s); dexp takes 2 or 3"),
        ("schedW=exp[tgtFactor=10]", "exp takes exactly tgtFactor, noiseStdev"),
        ("schedB=linear[0,1]", "schedB= tgtFactor must be a positive number, not 0"),
        ("schedB=exp[10,-1]", "noiseStdev must be a number >= 0"),
        ("schedW=linear[tgtFactor=2,1]", "mixes positional and named"),
        ("sched=exp[10]\nschedB=default", "has sched= (an older parser's key"),
    ],
)
def test_bad_schedules_are_refused_naming_file_line_and_layer(tmp_path, line, message):
    params = PARAMS.replace("momB=0.9\n", f"momB=0.9\n{line}\n")
    layers, params_path = write_cfg(tmp_path, params=params)
    with pytest.raises(ValueError) as e:
        training_config(layers, params_path)
    assert message in str(e.value)
    assert re.match(r".*layer-params-tiny\.cfg:8: layer 'fc10' ", str(e.value)), str(e.value)


def test_the_cli_refuses_a_bad_schedule_in_one_line(tmp_path):
    require(MINI)
    layers, params = write_cfg(tmp_path, params=PARAMS.replace("momB=0.9", "momB=0.9\nschedW=x[1]"))
    args = ["train", "--dataset", f"folder:{MINI}", "--chm-layers", str(layers),
            "--chm-params", str(params), "--model-dir", str(tmp_path / "r")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "layer-params-tiny.cfg:8: layer 'fc10' schedW= names no schedule type" in line


def test_the_run_notes_name_each_layers_schedule_and_the_old_forms_lines():
    require(RELEASE)
    cifar = RELEASE / "layers-cifar"
    net = read_net(cifar / "layers-18pct.cfg", cifar / "layer-params-18pct-noisylr.cfg")
    model, _ = update_rule.build(net, 10, 0)
    notes = update_rule.rate_schedule(model, net, seed=0).notes
    assert notes[0] == ("lr schedules: conv1, conv2, conv3, fc10: weights "
                        "linear[tgtFactor=1,noiseStdev=1], biases default")  # fmt: skip
    assert notes[1].startswith("layer-params-18pct-noisylr.cfg: schedW=linear[1,1] in conv1 (l.12)")
    assert len(notes) == 2


def test_default_schedules_give_no_rate_schedule(tmp_path):
    """A default file takes the trainer's step of before the schedules (`rates` is None)."""
    require(RELEASE)
    ex = RELEASE / "example-layers"
    net = read_net(ex / "layers-80sec.cfg", ex / "layer-params-80sec.cfg")
    model, _ = update_rule.build(net, 10, 0)
    assert update_rule.rate_schedule(model, net, seed=0) is None


SCHEDULED = PARAMS.replace("momB=0.9\n", "momB=0.9\nschedW=jdexp[tgtFactor=50,noiseStdev=0.5,"
                           "numSteps=2]\nschedB=linear[4,1]\n")  # fmt: skip


def chm_steps(kernel, bias, batches, drops, seed):
    """cuda-convnet's updates of the tiny two-input fc with schedules: per matrix two noisy
    `getRate` calls (gradient, wc), the bias one; progress = steps done / steps."""
    eps_w, eps_b, mom, wc, coeff = (0.001, 0.0004), 0.002, 0.9, (0.004, 0.5), 2.0
    rows = kernel.shape[0] // 2
    weights = [kernel[:rows].astype(np.float64), kernel[rows:].astype(np.float64)]
    b = bias.astype(np.float64)
    inc_w, inc_b = [np.zeros_like(w) for w in weights], np.zeros_like(b)
    for step, ((x, y), drop) in enumerate(zip(batches, drops, strict=True)):
        progress = step / len(batches)
        z = np.random.default_rng([seed, 0x6C72, step]).standard_normal((3, 2))
        acts = features(x.astype(np.float64))
        logits = acts[0] @ weights[0] + acts[1] @ weights[1] + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        v = coeff * (np.eye(10)[y] - p)
        n = len(y)
        for i in range(2):  # the hand drop is a smaller epsW: the schedule's base
            lrs = ChmLrs("jdexp", eps_w[i] * drop, tgt=50.0, noise=0.5, steps=2)
            inc_w[i] = mom * inc_w[i] + lrs.get_rate(progress, z[i, 0]) / n * (acts[i].T @ v)
            inc_w[i] += -wc[i] * lrs.get_rate(progress, z[i, 1]) * weights[i]
            weights[i] += inc_w[i]
        lrs = ChmLrs("linear", eps_b * drop, tgt=4.0, noise=1.0)
        inc_b = mom * inc_b + lrs.get_rate(progress, z[2, 0]) / n * v.sum(0)
        b += inc_b
    return np.concatenate(weights), b


def test_a_scheduled_run_applies_each_matrix_its_rate(tmp_path, caplog):
    """Six steps (a jump of jdexp at progress 5/6, noise, the stated x0.1 after epoch 1)."""
    require(MINI)
    layers, params = write_cfg(tmp_path / "cfg", params=SCHEDULED)
    config = train_config.resolve("train", {
        "dataset": f"folder:{MINI}", "chm_layers": str(layers), "chm_params": str(params),
        "batch_size": 50, "epochs": 2, "steps_per_epoch": 3, "eval_steps": 1,
        "model_dir": str(tmp_path / "run"), "seed": 4})  # fmt: skip
    _, full = update_rule.build(read_net(layers, params), 10, seed=4)
    kernel, bias = full.get_layer("fc10").get_weights()
    with caplog.at_level("INFO", logger="alexnet_keras"):
        result = run(config)
    assert result["status"] == "finished"
    assert ("lr schedules: fc10: weights jdexp[tgtFactor=50,noiseStdev=0.5,numSteps=2], "
            "biases linear[tgtFactor=4,noiseStdev=1]") in caplog.text  # fmt: skip
    trained, _ = load_mirror(result["weights"])
    splits, _ = open_dataset(f"folder:{MINI}")
    provider = MemoryProvider(splits, "mini", image_size=32, batch_size=50, seed=4)
    batches = [b for e in (0, 1) for b in list(provider.train(e).as_numpy_iterator())[:3]]
    want_w, want_b = chm_steps(kernel, bias, batches, [1, 1, 1, 0.1, 0.1, 0.1], seed=4)
    got_w, got_b = trained.get_layer("fc10").get_weights()
    assert np.abs(got_w - want_w).max() / np.abs(want_w - kernel).max() < 1e-4
    assert np.abs(got_b - want_b).max() / np.abs(want_b - bias).max() < 1e-4
    # Without the noise and the schedule the weights would differ far beyond that.
    plain_w, _ = chm_steps(kernel, bias, batches, [1, 1, 1, 0.1, 0.1, 0.1], seed=5)
    assert np.abs(plain_w - want_w).max() / np.abs(want_w - kernel).max() > 1e-2


@pytest.mark.slow  # the draws' (seed, step) purity is checked fast above
def test_a_resumed_noisy_run_repeats_the_noise(tmp_path):
    require(MINI)
    noisy = PARAMS.replace("momB=0.9\n", "momB=0.9\nschedW=linear[1,1]\n")
    layers, params = write_cfg(tmp_path / "cfg", params=noisy)

    def train(model_dir, epochs):
        config = train_config.resolve("train", {
            "dataset": f"folder:{MINI}", "chm_layers": str(layers), "chm_params": str(params),
            "batch_size": 40, "epochs": epochs, "steps_per_epoch": 2, "eval_steps": 1,
            "model_dir": str(model_dir), "seed": 1})  # fmt: skip
        return run(config)

    straight = train(tmp_path / "a", 2)
    train(tmp_path / "b", 1)
    resumed = train(tmp_path / "b", 2)
    a, _ = load_mirror(straight["weights"])
    b, _ = load_mirror(resumed["weights"])
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_step_takes_multipliers_as_tensors_and_none_is_the_old_rule(tmp_path):
    """No retrace per step; without a schedule the step is bit for bit the rule of before,
    SGD on `(g + decay * w) * mult`."""
    import keras
    import tensorflow as tf

    from alexnet_keras.training import setups
    from alexnet_keras.training.trainer import Trainer

    x, y = tf.random.stateless_normal((8, 4), (1, 2)), tf.constant([0, 1] * 4)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    def trainer(rates, folder):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc8")])
        given = {"dataset": "toy", "weights": "none", "lr": 0.1, "batch_size": 4}
        config = train_config.resolve("train", {**given, "model_dir": str(tmp_path / folder)})
        setup = setups.Setup(model=model, factors=[(0.5, 0.1), (2.0, None)], steps=2,
                             make_train=lambda e, s: data, make_eval=lambda: data,
                             rate_schedule=rates)  # fmt: skip
        return Trainer(config, tf.distribute.get_strategy(), setup), model

    old, model = trainer(None, "a")
    before = [v.numpy() for v in model.trainable_variables]
    xb, yb = next(iter(data))
    with tf.GradientTape() as tape:  # the same loss on the same weights: the same gradient
        per_example = keras.losses.sparse_categorical_crossentropy(yb, model(xb), from_logits=True)
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=4)
    g_k, g_b = (g.numpy() for g in tape.gradient(loss, model.trainable_variables))
    old.train_step(next(iter(old.distribute(data))), 0)
    lr, f = np.float32(0.1), np.float32
    want_k = before[0] + (f(0) * f(0.9) - (g_k + f(0.1) * before[0]) * f(0.5) * lr)
    want_b = before[1] + (f(0) * f(0.9) - g_b * f(2.0) * lr)
    np.testing.assert_array_equal(model.trainable_variables[0].numpy(), want_k)
    np.testing.assert_array_equal(model.trainable_variables[1].numpy(), want_b)

    seen = []

    def rates(progress, step):
        seen.append((progress, step))
        return [np.full((2, 1, 1), 1 + step, np.float32), np.float32([2.0, 3.0])]

    new, _ = trainer(rates, "b")
    for step in range(3):
        new.train_step(next(iter(new.distribute(data))), step)
    assert new._train_step.experimental_get_tracing_count() == 1
    assert seen == [(0.0, 0), (1 / 180, 1), (2 / 180, 2)]  # 90 epochs x 2 steps
