"""What a `train --chm-layers/--chm-params` run takes from its cfg pair, before anything runs.

`config.resolve` calls `chm_defaults` once: it reads the pair (`read_net`,
with the era `--convnet-semantics` names or the file implies) and turns what
the params file states (momentum, stated lr drops, epochs) into the run's
defaults; the parsed net travels on in `TrainConfig.chm_net`.
"""

import pathlib

__all__ = ["CHM_DEFAULTS", "CHM_NOT_APPLICABLE", "chm_defaults"]

# A cfg run (--chm-layers/--chm-params) takes these from the params file and
# cuda-convnet's CIFAR provider; `lr` becomes a factor on the file's epsW/epsB.
CHM_DEFAULTS = {
    "lr": 1.0,
    "weight_decay": 0.0,
    "batch_size": 128,
    "pca_std": 0.0,
    "epochs": 30,
}
CHM_NOT_APPLICABLE = (
    "variant", "input_size", "weight_decay", "decay_biases", "bias_lr_mult",
    "head_lr_mult", "lr_mults", "freeze_backbone", "trainable_from", "cache_features",
    "feature_layer", "cache_flip", "ten_crop", "pca_std", "mixed_precision"
)  # fmt: skip


def chm_defaults(command, given):
    """A cfg run's defaults (`CHM_DEFAULTS`, then what the params file states) and its `ChmNet`."""
    from alexnet_keras.cuda_convnet.cfg_net import read_net
    from alexnet_keras.cuda_convnet.update_rule import recipe

    if command != "train":
        raise ValueError("--chm-layers/--chm-params train a cfg net from scratch: use `train`")
    if not (given.get("chm_layers") and given.get("chm_params")):
        raise ValueError("--chm-layers and --chm-params go together (layers-*.cfg and its "
                         "layer-params-*.cfg)")  # fmt: skip
    clash = [k for k in CHM_NOT_APPLICABLE if given.get(k) not in (None, False, {}, [])]
    if clash:
        shown = ", ".join("--" + k.replace("_", "-") for k in clash)
        raise ValueError(
            f"{shown}: not for a --chm-layers run (the cfg files set the net, its rates and "
            "decay; the data is cuda-convnet's float32 CIFAR provider)"
        )
    for key in ("chm_layers", "chm_params"):
        if not pathlib.Path(given[key]).is_file():
            raise ValueError(f"--{key.replace('_', '-')} {given[key]}: no such file")
    from alexnet_keras.training import chm_data

    net = read_net(given["chm_layers"], given["chm_params"],
                   semantics=given.get("convnet_semantics"))  # fmt: skip
    net = chm_data.sized_net(net, given)  # the cropped provider's 24x24 input
    r = recipe(net)
    # The era is recorded as decided, so config.yaml says which semantics the run used.
    out = dict(CHM_DEFAULTS, momentum=r["momentum"], gamma=r["gamma"],
               milestones=r["milestones"], schedule=r["schedule"],
               convnet_semantics=net.semantics)  # fmt: skip
    if r["epochs"]:
        out["epochs"] = r["epochs"]
    return out, net
