"""Data-parallel ConViT training with JAX: `keras.distribution.DataParallel` and `model.fit`.

Every device holds the whole model (variables, optimizer state and metrics replicated); each
global batch is split over the devices and the gradients are averaged by XLA. The recipe is the
library's DeiT recipe at the global batch size (learning rate 5e-4 x batch / 512).

One host, all its GPUs or TPU cores:

    KERAS_BACKEND=jax python examples/distributed/jax_data_parallel.py \\
        --dataset imagenet2012 --data-dir ~/tensorflow_datasets --model convit_tiny \\
        --batch-size 1024 --epochs 300 --output-dir runs/convit_tiny_dp

Several hosts (a TPU pod slice, or a GPU cluster): run the same command on every host, with
--multi-host. It calls `keras.distribution.initialize()` before any computation, which starts
`jax.distributed`:
- TPU pod / multi-host TPU VM: nothing else to set, the TPU runtime provides the cluster;
  e.g. `gcloud compute tpus tpu-vm ssh NAME --worker=all --command="KERAS_BACKEND=jax python
  examples/distributed/jax_data_parallel.py --multi-host ..."`.
- GPU cluster: on each host set
      KERAS_DISTRIBUTION_JOB_ADDRESSES=10.0.0.1:1234   (the coordinator, process 0)
      KERAS_DISTRIBUTION_NUM_PROCESSES=2
      KERAS_DISTRIBUTION_PROCESS_ID=0                   (1 on the second host, ...)
  (or let SLURM provide them: jax.distributed reads the SLURM environment).
`DataParallel` then spans the global devices of all hosts, and `fit` gives each process its
shard of every global batch (the global batch must divide by the number of processes).

Smoke test, 4 simulated CPU devices (no accelerator needed):

    KERAS_BACKEND=jax python examples/distributed/jax_data_parallel.py --smoke
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ENGINE = "jax-data-parallel"


def parse_args(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument(
        "--multi-host",
        action="store_true",
        help="Call keras.distribution.initialize() (TPU pods, multi-host GPU).",
    )
    args = parser.parse_args(argv)
    if args.smoke and args.multi_host:
        parser.error("--smoke simulates devices on one host; it cannot be --multi-host.")
    return args


def main(argv=None):
    args = parse_args(argv)
    common.require_backend("jax", __file__)
    if args.smoke:
        common.simulate_jax_devices(args.devices or 4)
    import keras

    if args.multi_host:
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    if args.smoke and len(devices) != (args.devices or 4):
        sys.exit(f"Expected {args.devices or 4} simulated devices, JAX sees {devices}.")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))

    config = common.train_config(args)
    common.check_batch(config, len(devices))
    print(
        f"{ENGINE}: {len(devices)} devices ({devices[0]}, ...), global batch "
        f"{config.batch_size}, learning rate {config.learning_rate:.3g}",
        flush=True,
    )
    keras.utils.set_random_seed(config.seed)
    data = common.load_data(config)  # global batches: fit splits each over the devices
    model = common.compiled_model(
        config, data.num_classes, common.steps_per_epoch(data, args)
    )  # built after set_distribution, so its variables are replicated
    loss, updated = common.fit(model, data, config, args)

    pairs, shards = common.jax_replicas(model.variables + model.optimizer.variables)
    variables, copies, differing = common.compare_replicas(pairs)
    split = sorted(path for path, count in shards.items() if count != 1)
    if split:  # data parallel: every variable must be whole on every device
        differing += [f"{path} (split in {shards[path]} shards)" for path in split]
    common.evaluate_and_save(model, data, args, is_chief=_process_index() == 0)
    return common.finish(
        ENGINE,
        loss,
        differing,
        updated,
        devices=len(devices),
        steps=model.optimizer.iterations.numpy().item(),
        checked=variables,
        copies=copies,
    )


def _process_index():
    import jax

    return jax.process_index()


if __name__ == "__main__":
    sys.exit(main())
