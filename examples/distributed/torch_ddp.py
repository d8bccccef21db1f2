"""Data-parallel ConViT training with PyTorch: `torchrun` and `DistributedDataParallel`.

Keras 3.15 has no PyTorch engine in `keras.distribution`, but under the torch backend a Keras
model is a `torch.nn.Module`: this script wraps it in `DistributedDataParallel`, one process per
device, and trains it with a plain loop and the library's DeiT recipe (its AdamW, schedule and
loss, at the global batch size: learning rate 5e-4 x batch / 512). DDP broadcasts rank 0's
weights at the start and averages the gradients in `backward()`. Each process reads the same
tf.data pipeline and keeps every world_size-th batch of it.

One machine with 8 GPUs (NCCL):

    KERAS_BACKEND=torch torchrun --standalone --nproc-per-node=8 \\
        examples/distributed/torch_ddp.py --dataset imagenet2012 \\
        --data-dir ~/tensorflow_datasets --model convit_tiny --batch-size 1024 --epochs 300 \\
        --output-dir runs/convit_tiny_ddp

Several machines (here 2 x 8 GPUs): on every machine, with its own --node-rank,

    KERAS_BACKEND=torch torchrun --nnodes=2 --node-rank=0 --nproc-per-node=8 \\
        --master-addr=10.0.0.1 --master-port=29500 examples/distributed/torch_ddp.py ...

(or `--rdzv-backend=c10d --rdzv-endpoint=10.0.0.1:29500` for elastic launches). No TPU support:
PyTorch/XLA is not a Keras backend.

Smoke test, 2 gloo processes on this machine (the script launches `torchrun --standalone`;
it may also be started by torchrun directly):

    KERAS_BACKEND=torch python examples/distributed/torch_ddp.py --smoke
"""

import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ENGINE = "torch-ddp"


def parse_args(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument(
        "--dist-backend",
        choices=("nccl", "gloo"),
        default=None,
        help="Process-group backend (default nccl with GPUs, gloo without; gloo for --smoke).",
    )
    return parser.parse_args(argv)


def launch_smoke(argv):
    """--smoke outside torchrun: runs this script under torchrun, 2 processes on this machine.

    `--standalone` lets torchrun's rendezvous bind a free local port itself: a port probed here
    and released before torchrun binds it could be taken in between (a flaky smoke test)."""
    args = parse_args(argv)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
        f"--nproc-per-node={args.devices or 2}", os.path.abspath(__file__), *argv,
    ]  # fmt: skip
    print(f"Launching: {' '.join(command[1:])}", flush=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env).returncode


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    common.require_backend("torch", __file__)
    if "RANK" not in os.environ:
        if args.smoke:
            return launch_smoke(argv)
        sys.exit(
            "torch_ddp.py runs one process per device: start it with torchrun, e.g. "
            "KERAS_BACKEND=torch torchrun --standalone --nproc-per-node=8 "
            "examples/distributed/torch_ddp.py ... (or pass --smoke)."
        )
    import torch
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and not args.smoke
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)  # before Keras picks its device
    dist.init_process_group(args.dist_backend or ("nccl" if use_cuda else "gloo"))
    try:
        return train(args, dist, torch, use_cuda, local_rank)
    finally:
        dist.destroy_process_group()


def train(args, dist, torch, use_cuda, local_rank):
    import keras
    import numpy as np

    rank, world = dist.get_rank(), dist.get_world_size()
    config = common.train_config(args)
    common.check_batch(config, world)
    if rank == 0:
        print(
            f"{ENGINE}: {world} processes ({dist.get_backend()}), global batch "
            f"{config.batch_size}, learning rate {config.learning_rate:.3g}",
            flush=True,
        )
    keras.utils.set_random_seed(config.seed)
    # The same pipeline in every process (same seed, same order); each keeps its own batches.
    data = common.load_data(config, batch_size=config.batch_size // world)
    steps = common.steps_per_epoch(data, args, replicas=world)
    train_batches = data.train.shard(world, rank)
    model = common.compiled_model(config, data.num_classes, steps)
    optimizer, loss_fn = model.optimizer, model.loss
    optimizer.build(model.trainable_variables)
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[local_rank] if use_cuda else None
    )
    initial = [variable.numpy().copy() for variable in model.trainable_variables]

    loss = None
    for epoch in range(config.epochs):
        losses = []
        for images, labels in train_batches.take(steps).as_numpy_iterator():
            images = keras.ops.convert_to_tensor(images)
            labels = keras.ops.convert_to_tensor(labels)
            model.zero_grad()
            batch_loss = loss_fn(labels, ddp(images, training=True))
            batch_loss.backward()  # DDP all-reduces (averages) the gradients here
            gradients = [variable.value.grad for variable in model.trainable_variables]
            with torch.no_grad():
                optimizer.apply(gradients, model.trainable_variables)
            losses.append(batch_loss.detach())
        # The mean training loss of the epoch over all processes.
        loss_sum = torch.stack(losses).sum().reshape(1).double()
        dist.all_reduce(loss_sum)
        loss = loss_sum.item() / (len(losses) * world)
        if rank == 0 and args.verbose:
            print(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}", flush=True)
        if not math.isfinite(loss):
            break

    # Replica agreement: every process's copy of every variable, gathered on every process.
    variables = model.variables + optimizer.variables
    local = torch.cat([keras.ops.reshape(v.value, (-1,)).detach().double() for v in variables])
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local)
    sizes = [math.prod(v.shape) for v in variables]
    pairs = [
        (variable.path, [part.cpu().numpy() for part in parts])
        for variable, *parts in zip(
            variables, *(torch.split(g, sizes) for g in gathered), strict=True
        )
    ]
    count, copies, differing = common.compare_replicas(pairs)
    updated = all(
        not np.array_equal(before, variable.numpy())
        for before, variable in zip(initial, model.trainable_variables, strict=True)
    )
    if rank == 0:
        common.evaluate_and_save(model, data, args)
    if rank:  # the same checks on every process (gathered values, all-reduced loss)
        return common.EXIT_FAILED if differing or not math.isfinite(loss) else 0
    return common.finish(
        ENGINE,
        loss,
        differing,
        updated,
        processes=world,
        steps=int(keras.ops.convert_to_numpy(optimizer.iterations)),
        checked=count,
        copies=copies,
    )


if __name__ == "__main__":
    sys.exit(main())
