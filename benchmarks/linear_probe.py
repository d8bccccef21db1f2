"""A linear probe's training step against a full fine-tune's, per backend.

`keras-convit train --freeze-backbone` trains the head only: no gradient flows back through the
frozen blocks, so a step should cost about a forward pass. This times `train_on_batch` of the
same ConViT compiled with the job's recipe (`deit_recipe`, the backend's default jit), all
weights trainable against the backbone frozen as the job freezes it, after warm-up steps, and
writes the medians and their ratio.

    python benchmarks/linear_probe.py                      # every backend, each in a process
    python benchmarks/linear_probe.py --model convit_tiny --image-size 224 --batch-size 16
Writes benchmarks/results/linear_probe.json and .md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--model", default="convit_tiny")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up)")
    parser.add_argument("--one-backend", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def time_steps(args, frozen):
    """Median seconds of a training step, full (frozen=False) or a linear probe."""
    import keras
    import numpy as np

    from keras_convit.job.model import HEAD_LAYERS
    from keras_convit.models.variants import from_preset
    from keras_convit.training import deit_recipe

    keras.utils.set_random_seed(0)
    shape = (args.image_size, args.image_size, 3)
    model = from_preset(args.model, input_shape=shape, classes=10, compile=False)
    if frozen:
        for layer in model.layers:
            layer.trainable = layer.name in HEAD_LAYERS
    model.compile(**deit_recipe(model, args.batch_size, steps_per_epoch=100, epochs=1))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch_size, *shape)).astype("float32")
    labels = rng.integers(0, 10, args.batch_size)
    times = []
    for step in range(3 + args.steps):
        start = time.perf_counter()
        model.train_on_batch(images, labels)
        if step >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times), len(model.trainable_variables)


def one_backend(args):
    import keras

    full, full_variables = time_steps(args, frozen=False)
    probe, probe_variables = time_steps(args, frozen=True)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "full_step_s": round(full, 4),
        "probe_step_s": round(probe, 4),
        "speed_up": round(full / probe, 2),
        "trainable_variables": [full_variables, probe_variables],
    }))  # fmt: skip


def main(argv=None):
    args = parse_args(argv)
    if args.one_backend:
        return one_backend(args)
    rows = []
    forwarded = ["--model", args.model, "--image-size", str(args.image_size)]
    forwarded += ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    for backend in args.backends:
        environment = {**os.environ, "KERAS_BACKEND": backend, "OMP_WAIT_POLICY": "PASSIVE"}
        done = subprocess.run(
            [sys.executable, __file__, "--one-backend", *forwarded],
            env=environment, capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    setting = f"{args.model} at {args.image_size}x{args.image_size}, batch {args.batch_size}"
    lines = [
        f"Training step, median of {args.steps} after 3 warm-up, {setting}, on "
        f"{os.cpu_count()} CPU cores; the load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        "| backend | full fine-tune (s) | linear probe (s) | speed-up |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['backend']} | {r['full_step_s']} | {r['probe_step_s']} | {r['speed_up']}x |"
        for r in rows
    ]
    with open(os.path.join(RESULTS, "linear_probe.json"), "w") as file:
        json.dump({"setting": setting, "rows": rows}, file, indent=1)
    with open(os.path.join(RESULTS, "linear_probe.md"), "w") as file:
        file.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
