"""Training checkpoints: model, optimizer and RNG variables, plus the trainer's own state.

Variables are saved with `tf.train.Checkpoint` under keys made of our layer
names (stable across processes); the trainer state (epoch, step within the
epoch, global step, schedule) goes next to each checkpoint as JSON, renamed
into place. Under `MultiWorkerMirroredStrategy` every worker must save; the
chief's copy is the one that counts.
"""

import json
import os
import pathlib

__all__ = ["Checkpoints", "is_chief"]


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


class Checkpoints:
    """tf.train checkpoints of the model, optimizer and RNG variables, plus the trainer state."""

    def __init__(self, strategy, model, optimizer, model_dir, max_to_keep):
        import tensorflow as tf

        self.chief = is_chief(strategy)
        folder = pathlib.Path(model_dir) / "checkpoints"
        if not self.chief:  # every worker must save; only the chief's copy is kept
            resolver = strategy.cluster_resolver
            folder = pathlib.Path(model_dir) / f".worker-{resolver.task_type}-{resolver.task_id}"
        self.folder = folder

        # Keys from our layer names and positions: Keras' own variable paths
        # carry global counters ("seed_generator_3") that differ between runs.
        layers = {
            f"{layer.name}.{i}": v.value
            for layer in model.layers
            for i, v in enumerate(layer.variables)
        }
        slots = {f"{i:04d}": v.value for i, v in enumerate(optimizer.variables)}
        self.ckpt = tf.train.Checkpoint(model=layers, optimizer=slots)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(folder), max_to_keep=max_to_keep)

    def save(self, state):
        path = self.manager.save(checkpoint_number=state["global_step"])
        # The trainer state goes next to its checkpoint, renamed into place: a
        # kill between the two writes leaves the previous pair intact.
        tmp = pathlib.Path(f"{path}.state.json.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, f"{path}.state.json")
        return path

    def restore(self):
        """Restores the newest checkpoint that has its trainer state; returns the state, or None."""
        for path in reversed(self.manager.checkpoints):
            state_file = pathlib.Path(f"{path}.state.json")
            if state_file.exists():
                self.ckpt.restore(path).assert_existing_objects_matched()
                return json.loads(state_file.read_text())
        return None
