"""Fine-tune AlexNet on CIFAR-10 through the Python API (what `alexnet-keras finetune` does).

    python examples/finetune_cifar10.py --data-dir ../shared/data/tfds --weights none \
        --epochs 1 --steps-per-epoch 20 --eval-steps 10

Without `--weights` it starts from the converted BVLC weights
(`alexnet-keras convert bvlc_alexnet` first).
"""

import argparse

import alexnet_keras  # noqa: F401  (first: sets the TF environment)
from alexnet_keras.training import config as train_config
from alexnet_keras.training.run import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--weights", default="bvlc_alexnet")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--eval-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model-dir", default="runs/cifar10-example")
    args = parser.parse_args(argv)
    config = train_config.resolve(
        "finetune",
        {
            "dataset": "cifar10",
            "data_dir": args.data_dir,
            "weights": args.weights,
            "epochs": args.epochs,
            "steps_per_epoch": args.steps_per_epoch,
            "eval_steps": args.eval_steps,
            "batch_size": args.batch_size,
            "model_dir": args.model_dir,
        },
    )
    result = run(config)
    print(result["status"], result["metrics"], result["weights"])
    if result["weights"]:
        model = alexnet_keras.AlexNet(weights=result["weights"])
        print(model.name, model.output_shape)


if __name__ == "__main__":
    main()
