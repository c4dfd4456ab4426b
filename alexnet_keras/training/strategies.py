"""The `tf.distribute` strategy a run uses."""

__all__ = ["make_strategy"]


def make_strategy(name, cpu_devices=1):
    """The `tf.distribute` strategy: "auto", "one-device", "mirrored" or "multi-worker"."""
    import tensorflow as tf

    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_devices > 1:  # N logical CPUs, to run a mirrored strategy on one CPU
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices
            )
        except RuntimeError:  # already initialised in this process
            pass
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "one-device" or gpus:
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    return tf.distribute.get_strategy()
