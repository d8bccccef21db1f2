"""Where the PyTorch time goes: `torch.profiler` tables, per operator, of keras_convit's ConViT
and timm's in the same process (eager PyTorch, CPU), for the forward pass or a training step.

    python benchmarks/profile_torch.py --mode forward --batch-size 16
    python benchmarks/profile_torch.py --mode train --batch-size 16

Writes benchmarks/results/profile_torch_<variant>_<mode>_b<batch>.txt: the seconds per batch of
each model (the mean of --steps after --warmup, one after the other: `throughput.py` gives the
interleaved figures) and its operators sorted by their own CPU time.
"""

import argparse
import os
import time

os.environ["KERAS_BACKEND"] = "torch"

from contestants import (  # noqa: E402
    REPOSITORY,
    configure_device,
    keras_steps,
    timm_references,
    timm_steps,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="convit_tiny")
    parser.add_argument("--mode", choices=("forward", "train"), default="forward")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20, help="operators listed per model")
    parser.add_argument("--output-dir", default=os.path.join(REPOSITORY, "benchmarks", "results"))
    return parser.parse_args(argv)


def steps(args):
    """{"keras_convit": step, "timm": step}: the benchmark's own callables (`contestants`), each
    running one batch of `args.mode`: Keras' `predict_on_batch` / `train_on_batch` with the
    default compile, timm under `torch.inference_mode` / cross-entropy, backward and AdamW."""
    reference = timm_references(args.variant)[0]  # puts the repository on sys.path
    from keras_convit.presets import PRESETS

    size = PRESETS[args.variant].input_size[0]
    ours = keras_steps(args.variant, size, "float32", "auto")
    theirs = timm_steps(reference, size, "float32", "cpu")
    return {
        "keras_convit": ours(args.mode, args.batch_size),
        f"timm {reference}": theirs(args.mode, args.batch_size),
    }


def profile(step, args):
    """(seconds per batch, the profiler's table) of `step`."""
    import torch
    from torch.profiler import ProfilerActivity

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    with torch.profiler.profile(activities=[ProfilerActivity.CPU], profile_memory=True) as run:
        for _ in range(args.steps):
            step()
    table = run.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=44
    )
    return seconds, table


def main(argv=None):
    args = parse_args(argv)
    configure_device("cpu")
    sections = []
    for name, step in steps(args).items():
        seconds, table = profile(step, args)
        sections.append(f"== {name}: {seconds:.4f} s per batch ({args.steps} batches profiled)\n")
        sections.append(table + "\n")
        print(sections[-2], flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(
        args.output_dir, f"profile_torch_{args.variant}_{args.mode}_b{args.batch_size}.txt"
    )
    with open(path, "w") as file:
        file.write("".join(sections))
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
