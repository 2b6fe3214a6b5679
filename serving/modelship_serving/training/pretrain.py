"""Making a base model for demos and tests, through the trainer's own pipeline.

    python -m modelship_serving.training.pretrain \\
        --dataset 'sklearn://breast_cancer?rows=0:200' --task classification --out DIR

trains a small MLP from scratch on the rows given and publishes it as version
1 of ``--model-name`` (default ``base``) in the model repository ``DIR``:
``DIR/base/1/`` holds ``checkpoint.pt`` and ``architecture.json`` (what a
fine-tune starts from: ``baseModel.uri: file://DIR/base/1``) next to
``model.onnx``, so the same directory can be served as version 1. It is the
trainer with a from-scratch base model, not a second training loop.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import TrainerError


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "modelName": args.model_name,
        "version": args.version,
        "outputRepository": str(Path(args.out).resolve()),
        "fineTuning": {
            "baseModel": {"architecture": "mlp", "hiddenSizes": args.hidden_sizes},
            "dataset": {"uri": args.dataset, "targetColumn": args.target_column},
            "task": args.task,
            "numClasses": args.num_classes,
            "hyperParameters": {
                "optimizer": "adam", "learningRate": args.learning_rate,
                "batchSize": args.batch_size, "epochs": args.epochs,
                "earlyStoppingPatience": args.patience, "seed": args.seed,
            },
        },
    }


def _sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes look like 32,16, got {text!r}") \
            from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modelship_serving.training.pretrain",
                                     description="Train a small base model from scratch.")
    parser.add_argument("--dataset", required=True, help="dataset URI, e.g. "
                        "sklearn://breast_cancer?rows=0:200")
    parser.add_argument("--task", required=True, choices=["classification", "regression"])
    parser.add_argument("--out", required=True, help="model repository to publish into")
    parser.add_argument("--model-name", default="base")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--target-column", default=None)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--hidden-sizes", type=_sizes, default=[32, 16])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .config import parse_config
    from .progress import configure_logging

    configure_logging(stream=sys.stderr)
    try:
        config = parse_config(build_config(args))
        from .pipeline import run

        result = run(config, show_progress=args.progress)
    except TrainerError as exc:
        print(json.dumps({"phase": "Failed", "reason": exc.reason, "message": str(exc)}))
        return exc.exit_code
    version_dir = config.output_repository / config.model_name / str(config.version)
    result["versionDir"] = str(version_dir)
    result["baseModelUri"] = version_dir.as_uri()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
