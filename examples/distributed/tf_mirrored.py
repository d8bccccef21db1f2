"""Data-parallel ConViT training with TensorFlow: `tf.distribute` strategies and `model.fit`.

`--strategy` picks the engine; the model is built and compiled inside `strategy.scope()`, so
its variables (and the optimizer's) are mirrored on every replica, and `fit` splits each global
batch over the replicas and all-reduces the gradients. The recipe is the library's DeiT recipe
at the global batch size (learning rate 5e-4 x batch / 512).

- `mirrored` (default): all GPUs of one machine (`tf.distribute.MirroredStrategy`).

      KERAS_BACKEND=tensorflow python examples/distributed/tf_mirrored.py \\
          --dataset imagenet2012 --data-dir ~/tensorflow_datasets --model convit_tiny \\
          --batch-size 1024 --epochs 300 --output-dir runs/convit_tiny_tf

- `multi-worker`: several machines (`tf.distribute.MultiWorkerMirroredStrategy`). Run the same
  command on every worker, each with its own TF_CONFIG, e.g. on the first of two:

      TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                  "task": {"type": "worker", "index": 0}}' \\
      KERAS_BACKEND=tensorflow python examples/distributed/tf_mirrored.py \\
          --strategy multi-worker --batch-size 1024 ...

  (index 1 on the second). Every worker reads the whole data set; Keras shards it by batch.
  Worker 0 writes the weights. Keras 3.15.1's `fit` fails under this strategy before the first
  step (keras#20585, open; reproduced with two workers on 127.0.0.1): for several machines
  use JAX (`keras-convit train --distribute data`, docs/scaling-out.md) or PyTorch (torchrun).

- `tpu`: a Cloud TPU (`tf.distribute.TPUStrategy`); `--tpu local` on a TPU VM (default), or the
  TPU name / grpc:// address of a TPU node, whose data must then come from a GCS bucket
  (`--data-dir gs://...`). Compiled with `--steps-per-execution` steps per TPU call.

      KERAS_BACKEND=tensorflow python examples/distributed/tf_mirrored.py \\
          --strategy tpu --batch-size 1024 ...

  For TPUs, JAX (`keras-convit train --distribute data`) is the better-supported Keras 3 path.

Smoke test, MirroredStrategy over 2 logical CPU devices (no accelerator needed):

    KERAS_BACKEND=tensorflow python examples/distributed/tf_mirrored.py --smoke
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ENGINE = "tf-distribute"
STRATEGIES = ("mirrored", "multi-worker", "tpu")


def parse_args(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--strategy", choices=STRATEGIES, default="mirrored")
    parser.add_argument("--tpu", default="local", help="--strategy tpu: TPU name or address.")
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=None,
        help="Training steps per compiled call (default 32 on TPU, 1 otherwise).",
    )
    args = parser.parse_args(argv)
    if args.smoke and args.strategy != "mirrored":
        parser.error("--smoke simulates MirroredStrategy on logical CPU devices only.")
    return args


def make_strategy(args, tf):
    """The `tf.distribute` strategy of `--strategy` (with --smoke: CPU split in devices)."""
    if args.smoke:
        count = args.devices or 2
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * count
        )
        return tf.distribute.MirroredStrategy([f"/cpu:{index}" for index in range(count)])
    if args.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if args.strategy == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            print("TF_CONFIG is not set: running as a single worker.", flush=True)
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=args.tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def replica_values(variables):
    """(path, per-replica numpy values) of Keras variables under a strategy."""
    pairs = []
    for variable in variables:
        value = variable.value
        components = getattr(value, "values", None)  # a DistributedVariable's per-replica copies
        copies = [c.numpy() for c in components] if components is not None else [value.numpy()]
        pairs.append((variable.path, copies))
    return pairs


def is_chief(strategy):
    if not os.environ.get("TF_CONFIG"):
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and task.get("index", 0) == 0


def main(argv=None):
    args = parse_args(argv)
    common.require_backend("tensorflow", __file__)
    import tensorflow as tf

    strategy = make_strategy(args, tf)
    replicas = strategy.num_replicas_in_sync
    config = common.train_config(args)
    common.check_batch(config, replicas)
    print(
        f"{ENGINE}: {type(strategy).__name__} with {replicas} replicas, global batch "
        f"{config.batch_size}, learning rate {config.learning_rate:.3g}",
        flush=True,
    )
    import keras

    keras.utils.set_random_seed(config.seed)
    data = common.load_data(config)  # global batches: fit splits each over the replicas
    steps_per_execution = args.steps_per_execution or (32 if args.strategy == "tpu" else 1)
    with strategy.scope():
        model = common.compiled_model(
            config,
            data.num_classes,
            common.steps_per_epoch(data, args),
            steps_per_execution=steps_per_execution,
        )
    loss, updated = common.fit(model, data, config, args)

    pairs = replica_values(model.variables + model.optimizer.variables)
    count, copies, differing = common.compare_replicas(pairs)
    if args.smoke and copies != count * replicas:
        differing.append(f"only {copies} copies of {count} variables on {replicas} replicas")
    common.evaluate_and_save(model, data, args, is_chief=is_chief(strategy))
    return common.finish(
        ENGINE,
        loss,
        differing,
        updated,
        strategy=type(strategy).__name__,
        replicas=replicas,
        steps=int(model.optimizer.iterations.numpy()),
        checked=count,
        copies=copies,
    )


if __name__ == "__main__":
    sys.exit(main())
