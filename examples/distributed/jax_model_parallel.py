"""Data- and model-parallel ConViT training with JAX: a 2-D `DeviceMesh`, the library's
`LayoutMap` and `keras.distribution.ModelParallel`, for the large variants.

The devices form a ("data", "model") mesh. Along "model", every block's attention and MLP
kernels are split Megatron-style (`keras_convit.distribution.convit_layout_map`: qk, v, qkv and
fc1 by column, proj and fc2 by row); along "data", the batch is split and the gradients are
averaged. `--model-parallel` sets the size of the "model" axis; the rest is data parallel.

One host with 8 GPUs (or a TPU v4-8 VM), 4 data x 2 model:

    KERAS_BACKEND=jax python examples/distributed/jax_model_parallel.py \\
        --dataset imagenet2012 --data-dir ~/tensorflow_datasets --model convit_base_plus \\
        --model-parallel 2 --batch-size 1024 --epochs 300 --output-dir runs/convit_b_plus_mp

Several hosts: the same command on every host with --multi-host (docs/scaling-out.md says
what `keras.distribution.initialize()` needs on TPU pods and GPU clusters). Keep the "model"
axis within a host (model parallelism needs the fastest interconnect): the mesh is laid out
with the data axis across hosts.

Smoke test, 4 simulated CPU devices as 2 data x 2 model:

    KERAS_BACKEND=jax python examples/distributed/jax_model_parallel.py --smoke
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ENGINE = "jax-model-parallel"


def parse_args(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument(
        "--model-parallel",
        type=int,
        default=2,
        help="Devices along the 'model' axis (each block's kernels are split over them).",
    )
    parser.add_argument(
        "--multi-host",
        action="store_true",
        help="Call keras.distribution.initialize() (TPU pods, multi-host GPU).",
    )
    args = parser.parse_args(argv)
    if args.smoke and args.multi_host:
        parser.error("--smoke simulates devices on one host; it cannot be --multi-host.")
    if args.model_parallel < 1:
        parser.error(f"--model-parallel must be >= 1, got {args.model_parallel}.")
    return args


def main(argv=None):
    args = parse_args(argv)
    common.require_backend("jax", __file__)
    if args.smoke:
        common.simulate_jax_devices(args.devices or 4)
    import keras

    import keras_convit

    if args.multi_host:
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    if len(devices) % args.model_parallel:
        sys.exit(
            f"--model-parallel {args.model_parallel} does not divide the {len(devices)} devices."
        )
    mesh_shape = (len(devices) // args.model_parallel, args.model_parallel)
    mesh = keras.distribution.DeviceMesh(mesh_shape, ("data", "model"), devices=devices)
    config = common.train_config(args)
    common.check_batch(config, mesh_shape[0])

    # Check the plan before building the model: on a 2-block copy of it, same widths.
    keras_convit.distribution.convit_layout_map(mesh, model=_shallow_copy(config))
    layout_map = keras_convit.distribution.convit_layout_map(mesh)
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="data")
    )
    print(
        f"{ENGINE}: mesh {dict(zip(mesh.axis_names, mesh_shape, strict=True))}, global batch "
        f"{config.batch_size}, learning rate {config.learning_rate:.3g}",
        flush=True,
    )
    keras.utils.set_random_seed(config.seed)
    data = common.load_data(config)
    model = common.compiled_model(config, data.num_classes, common.steps_per_epoch(data, args))
    loss, updated = common.fit(model, data, config, args)

    variables = model.variables + model.optimizer.variables
    pairs, shards = common.jax_replicas(variables)
    count, copies, differing = common.compare_replicas(pairs)
    # Each variable must be split exactly as the layout map says: into as many shards as the
    # product of the mesh axes it names (optimizer slots follow their variable).
    sizes = dict(zip(mesh.axis_names, mesh_shape, strict=True))
    sharded = 0
    for variable in model.variables:
        layout = layout_map[variable.path]
        expected = math.prod(sizes[axis] for axis in layout.axes if axis) if layout else 1
        sharded += expected > 1
        if shards[variable.path] != expected:
            differing.append(f"{variable.path} ({shards[variable.path]} shards, not {expected})")
    if args.model_parallel > 1 and not sharded:
        differing.append("no variable is sharded")
    common.evaluate_and_save(model, data, args, is_chief=_process_index() == 0)
    return common.finish(
        ENGINE,
        loss,
        differing,
        updated,
        mesh="x".join(map(str, mesh_shape)),
        steps=model.optimizer.iterations.numpy().item(),
        checked=count,
        sharded_variables=sharded,
        copies=copies,
    )


def _shallow_copy(config):
    import dataclasses

    from keras_convit.job import build_model

    shallow = {**config.model_args, "depth": 2, "local_up_to_layer": 1}
    return build_model(dataclasses.replace(config, model_args=shallow), num_classes=10)


def _process_index():
    import jax

    return jax.process_index()


if __name__ == "__main__":
    sys.exit(main())
