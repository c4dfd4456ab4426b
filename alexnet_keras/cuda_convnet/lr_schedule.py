"""CHM's learning-rate schedules (`schedW=`/`schedB=`): parsed, and the rate factor per step.

Read from the CHM release (the AlexNet source released through the Computer
History Museum; GitHub mirror yrmo/AlexNet-Source-Code), not copied:

- `src/lr.cu` l.12-33 (`LearningRateSchedule::make`): the types `default`,
  `linear`, `exp`, `dexp` (DiscreteExp) and `jdexp` (JumpyDiscreteExp), each
  with `tgtFactor` and `noiseStdev`, the last two with `numSteps`. `TanhLRS`
  (l.114-125) exists but `make` never builds it. `include/lr.cuh` l.14-20:
  the rate falls from `epsW` ("base") to `epsW / tgtFactor`.
- The formulas, with `p` the training progress in [0, 1]:
  linear (l.90-92) `base * (1 - p) + base / tgtFactor * p`; exp (l.99-107)
  `base ** (1 + p * pw)`, `pw = log(base / tgtFactor) / log(base) - 1`
  (= `base * tgtFactor ** -p`, except that a base of exactly 1 stays 1);
  dexp (l.132-151) the exp rates at `i / (numSteps - 1)` for
  `i < numSteps - 1` plus the final rate, `rates[i]` for the first `i` with
  `p <= (i + 1) / numSteps`; jdexp (l.158-186) dexp, but in the second half
  of an interval after the first, while `0.2 < p < 0.9`, the geometric mean
  of that interval's rate and the previous one's.
- Noise (l.43-46, 52-67): with `noiseStdev > 0`, every `getRate` call
  multiplies the rate by `1 + |z| * noiseStdev`, `z` a fresh N(0, 1) draw
  (Box-Muller on glibc `random()`, with 3.1415 for pi). Each weight matrix
  (one per input of a layer) and each bias vector has its own schedule
  (`src/layer.cu` l.554, 565), and `Weights::update` (`src/weights.cu`
  l.146-197) calls `getRate` once for the gradient step and once more for
  the `wc` decay step: two independent draws per matrix per update. Here
  `z` comes from a numpy Generator seeded by `(seed, step)`
  (`RateSchedule.draws`), so a resumed run repeats it; the distribution is
  the same, the stream is not glibc's.
- Progress: `convnet.py` l.106-108 passes
  `min(1, max(0, (batches done - 1) / (epochs * batches per epoch)))`, the
  data batches finished before this one over the run's total, constant for
  the minibatches of one data batch. Here it is per minibatch: steps done
  before this one over the run's steps (`Trainer`).
- Syntax: the release's `layer.py` (l.69-93, 1411-1415, read at l.739-740)
  takes only named parameters, all of them, in order (here in any order),
  case-insensitive, e.g. `dexp[tgtFactor=250,noiseStdev=0,numSteps=4]`,
  under `schedW`/`schedB`.
  Older files in the release use forms of earlier parsers, read here by
  a documented rule (`read`): positional values in the named order,
  `tgtFactor[,noiseStdev]` for linear/exp and
  `tgtFactor[,noiseStdev],numSteps` for dexp/jdexp (the two-value dexp has
  no noise: `layer-params-166.cfg`'s `schedB=dexp[10,2]` is the bias
  schedule later files write `dexp[tgtFactor=10,noiseStdev=0,numSteps=2]`),
  and `sched=` for both weights and biases (153-163; 166's comment "with
  separate schedb" marks the change). So the `-noisylr` files' `linear[1,1]`
  is `linear[tgtFactor=1,noiseStdev=1]`: a constant rate times
  `1 + |N(0,1)|`, the noisy rate of their name. The release's own parser
  rejects these forms ("unable to parse learning rate schedule"); the run's
  notes say so.
"""

import dataclasses
import functools
import math

import numpy as np

from alexnet_keras.limits import MAX_SCHEDULE_STEPS

__all__ = ["KINDS", "LrSchedule", "Matrix", "RateSchedule", "read"]

# Named parameters, in layer.py's order (l.1411-1415).
KINDS = {
    "default": (),
    "linear": ("tgtFactor", "noiseStdev"),
    "exp": ("tgtFactor", "noiseStdev"),
    "dexp": ("tgtFactor", "noiseStdev", "numSteps"),
    "jdexp": ("tgtFactor", "noiseStdev", "numSteps"),
}
# Positional forms of the older parsers: value count -> names.
_POSITIONAL = {
    "linear": {1: ("tgtFactor",), 2: ("tgtFactor", "noiseStdev")},
    "exp": {1: ("tgtFactor",), 2: ("tgtFactor", "noiseStdev")},
    "dexp": {2: ("tgtFactor", "numSteps"), 3: ("tgtFactor", "noiseStdev", "numSteps")},
    "jdexp": {2: ("tgtFactor", "numSteps"), 3: ("tgtFactor", "noiseStdev", "numSteps")},
}


@dataclasses.dataclass(frozen=True)
class LrSchedule:
    """One CHM schedule: its type and parameters.

    Example:

    >>> s = LrSchedule("dexp", tgt_factor=250.0, num_steps=4)
    >>> [round(s.factor(0.01, p), 6) for p in (0.0, 0.3, 0.6, 1.0)]
    [1.0, 0.15874, 0.025198, 0.004]
    >>> s.text
    'dexp[tgtFactor=250,noiseStdev=0,numSteps=4]'
    """

    kind: str = "default"
    tgt_factor: float = 1.0
    noise_stdev: float = 0.0
    num_steps: int = 1

    @property
    def text(self):
        """The release's named syntax."""
        if self.kind == "default":
            return "default"
        values = {"tgtFactor": self.tgt_factor, "noiseStdev": self.noise_stdev,
                  "numSteps": self.num_steps}  # fmt: skip
        inner = ",".join(f"{name}={values[name]:g}" for name in KINDS[self.kind])
        return f"{self.kind}[{inner}]"

    def rate(self, base, progress):
        """CHM's `_getRate(progress)` for a layer whose `epsW`/`epsB` is `base` (no noise)."""
        if self.kind == "default":
            return float(base)
        final = base / self.tgt_factor
        if self.kind == "linear":
            return base * (1 - progress) + final * progress
        if self.kind == "exp":
            return _exp_rate(base, final, progress)
        rates = _discrete_rates(base, final, self.num_steps)
        n = len(rates)
        index = next((i for i in range(n) if progress <= (i + 1) / n), None)
        if self.kind == "dexp":
            return rates[-1 if index is None else index]
        index = index or 0  # lr.cu l.163-169: past the end it stays at 0
        jump = index > 0 and 0.2 < progress < 0.9 and progress > (index + 0.5) / n
        return math.sqrt(rates[index] * rates[index - 1]) if jump else rates[index]

    def factor(self, base, progress):
        """`rate / base`, the multiplier on the layer's constant rate; 1 for a base <= 0
        (cuda-convnet does not update such weights, `src/weights.cu` l.148)."""
        return 1.0 if base <= 0 else self.rate(base, progress) / base


@functools.lru_cache(maxsize=1024)
def _discrete_rates(base, final, steps):
    """DiscreteExpLRS's table: exp rates at `i / (steps - 1)`, then the final rate."""
    return tuple(_exp_rate(base, final, i / (steps - 1)) for i in range(steps - 1)) + (final,)


def _exp_rate(base, final, progress):
    """ExpLRS in float64 as C computes it: `pow(1, nan)` is 1, so a base of 1 stays 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.float64(base)
        pw = np.log(np.float64(final)) / np.log(b) - 1 if base != 0 else np.float64(1)
        return float(np.power(b, 1.0 + progress * pw))


def read(parsed):
    """An `LrSchedule` from `cfg_params.parse_schedule`'s dict, and a note for an old form.

    Args:
        parsed: `{"name", "args", "kwargs", "text"}`.

    Returns:
        `(LrSchedule, note)`; `note` is None for the release's own syntax,
        else a sentence on the rule that read it (module docstring).

    Raises:
        ValueError: why the text is no schedule (a sentence without the
            file, which the caller adds).

    Example:

    >>> from alexnet_keras.cuda_convnet.cfg_params import parse_schedule
    >>> schedule, note = read(parse_schedule("linear[1,1]"))
    >>> schedule.text
    'linear[tgtFactor=1,noiseStdev=1]'
    >>> read(parse_schedule("Exp[tgtFactor=10,noiseStdev=0]"))
    (LrSchedule(kind='exp', tgt_factor=10.0, noise_stdev=0.0, num_steps=1), None)
    """
    kind, args, kwargs = parsed["name"].lower(), parsed["args"], parsed["kwargs"]
    if kind not in KINDS:
        raise ValueError(
            f"names no schedule type CHM builds ({', '.join(KINDS)}; src/lr.cu l.12-33)"
        )
    names, note = KINDS[kind], None
    if args and kwargs:
        raise ValueError("mixes positional and named parameters")
    if args:
        names = _POSITIONAL.get(kind, {}).get(len(args))
        if names is None:
            counts = " or ".join(map(str, _POSITIONAL.get(kind, {0: ()})))
            raise ValueError(f"gives {len(args)} value(s); {kind} takes {counts}")
        values = dict(zip(names, args, strict=True))
        note = (
            f"positional parameters, which the release's layer.py (l.69-93) rejects; read "
            f"in its named order as {_schedule(kind, values).text}"
        )
    else:
        given = {k.lower(): v for k, v in kwargs.items()}
        wanted = {n.lower(): n for n in names}
        if set(given) != set(wanted):
            raise ValueError(f"{kind} takes exactly {', '.join(names) or 'no parameters'}")
        values = {wanted[k]: v for k, v in given.items()}
    return _schedule(kind, values), note


def _schedule(kind, values):
    tgt, noise = values.get("tgtFactor", 1.0), values.get("noiseStdev", 0.0)
    steps = values.get("numSteps", 1)
    if not (math.isfinite(tgt) and tgt > 0):
        raise ValueError(f"tgtFactor must be a positive number, not {tgt}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noiseStdev must be a number >= 0, not {noise}")
    if isinstance(steps, float) or not 1 <= steps <= MAX_SCHEDULE_STEPS:
        raise ValueError(f"numSteps must be a whole number in 1..{MAX_SCHEDULE_STEPS}, not {steps}")
    return LrSchedule(kind, float(tgt), float(noise), int(steps))


@dataclasses.dataclass(frozen=True)
class Matrix:
    """One cuda-convnet weight matrix (or bias vector) inside a Keras variable.

    Attributes:
        schedule: its `LrSchedule`.
        base: its `epsW[i]` or `epsB`.
        rows: its rows of the variable's input axis (None: the whole variable).
    """

    schedule: LrSchedule
    base: float
    rows: int | None = None


class RateSchedule:
    """Per step, every trainable variable's `(gradient, decay)` rate multipliers.

    cuda-convnet's update is `inc = mom * inc + r1 * grad - wc * r2 * W`,
    `r1`/`r2` two `getRate` calls; this gives `r / base` for each, per
    matrix, broadcast over the kernel's input axis when a variable holds
    several matrices (a layer with several inputs).

    Args:
        variables: per trainable variable, `(matrices, shape)`: its
            `Matrix` list and the multipliers' shape (`()`, or the per-input
            broadcast shape, e.g. `(1, 1, channels, 1)`).
        seed: the run's seed (None: 0).
        notes: lines for the run's log (which layer uses which schedule).

    Example:

    >>> s = LrSchedule("linear", tgt_factor=10.0)
    >>> rates = RateSchedule([([Matrix(s, 0.01)], ())], seed=0)
    >>> [m.tolist() for m in rates(0.5, step=7)]
    [[0.550000011920929, 0.550000011920929]]
    """

    def __init__(self, variables, seed, notes=()):
        self.notes = tuple(notes)
        self.variables = [(list(matrices), tuple(shape)) for matrices, shape in variables]
        self.seed = 0 if seed is None else int(seed)
        self.count = sum(len(m) for m, _ in self.variables)

    def draws(self, step):
        """`z`, shape `(matrices, 2)`: the N(0, 1) draws of step `step` (gradient, decay),
        matrices in variable order; a pure function of `(seed, step)`."""
        rng = np.random.default_rng([self.seed, 0x6C72, int(step)])
        return rng.standard_normal((self.count, 2))

    def __call__(self, progress, step):
        """float32 arrays, one per variable, shape `(2, *shape)`: rows gradient, decay."""
        z, k, out = None, 0, []
        for matrices, shape in self.variables:
            values = np.empty((2, len(matrices)))
            for i, m in enumerate(matrices):
                values[:, i] = m.schedule.factor(m.base, progress)
                if m.schedule.noise_stdev > 0:
                    z = self.draws(step) if z is None else z
                    values[:, i] *= 1 + np.abs(z[k]) * m.schedule.noise_stdev
                k += 1
            if shape:
                rows = [m.rows for m in matrices]
                values = np.repeat(values, rows, axis=1).reshape((2, *shape))
            else:
                values = values[:, 0]
            out.append(values.astype(np.float32))
        return out

    def is_constant(self):
        """True when every matrix has the default schedule (the trainer then skips it)."""
        return all(m.schedule.kind == "default" for ms, _ in self.variables for m in ms)
