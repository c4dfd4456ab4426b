"""Learning-rate schedules for the trainer: step, the paper's /10 on plateau, cosine, warm-up."""

import logging
import math

__all__ = ["Schedule"]

log = logging.getLogger("alexnet_keras")


class Schedule:
    """Learning rate per step; the plateau state lives in the checkpointed trainer state."""

    def __init__(self, config, steps_per_epoch):
        self.config, self.steps = config, steps_per_epoch
        self.scale = 1.0  # plateau: the product of the /10 drops so far
        self.best, self.bad_epochs = None, 0

    def __call__(self, step):
        c, epoch = self.config, step / self.steps
        lr = c.lr
        if c.schedule == "step" and c.milestones:
            lr *= c.gamma ** sum(epoch >= m for m in c.milestones)
        elif c.schedule == "step":
            lr *= c.gamma ** int(epoch // c.step_epochs)
        elif c.schedule == "cosine":
            lr *= 0.5 * (1 + math.cos(math.pi * min(1.0, epoch / c.epochs)))
        elif c.schedule == "plateau":
            lr *= self.scale
        if c.warmup_epochs and epoch < c.warmup_epochs:
            lr *= (step + 1) / (c.warmup_epochs * self.steps)
        return lr

    def end_epoch(self, val_top1):
        """The paper's rule: divide by 10 when the validation accuracy stops improving."""
        if self.config.schedule != "plateau" or val_top1 is None:
            return
        if self.best is None or val_top1 > self.best + 1e-4:
            self.best, self.bad_epochs = val_top1, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.config.plateau_patience:
            self.scale *= self.config.gamma
            self.bad_epochs = 0
            log.warning("validation accuracy plateaued: learning rate x%g", self.config.gamma)

    def state(self):
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load(self, state):
        self.scale, self.best, self.bad_epochs = state["scale"], state["best"], state["bad_epochs"]
