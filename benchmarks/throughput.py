"""Forward and training-step throughput and peak memory of keras_convit against timm.

Runs on the current Keras backend (`KERAS_BACKEND`). Every keras_convit figure is measured side by
side with timm's ConViT and DeiT of the same size: the three take turns in interleaved rounds in
one process (with a pause between turns, so one framework's idle threads do not eat into the
next one's time), and the ratios hold even when the machine's load drifts during the run. Peak
memory is measured in a fresh subprocess per figure (benchmarks/memory.py).

    KERAS_BACKEND=tensorflow python benchmarks/throughput.py
    KERAS_BACKEND=torch python benchmarks/throughput.py --models convit_tiny --modes forward
    python benchmarks/run_all.py            # the three backends, each in its own process, merged

Forward is `model.predict_on_batch` (inference); a training step is `model.train_on_batch` with
the models' default compile (AdamW, cross-entropy), against timm's forward under
`torch.inference_mode` and a timm step (forward, cross-entropy, backward, `torch.optim.AdamW`).
`--jit-compile auto` keeps keras_convit's per-backend default (`default_jit_compile`).
Results go to `<output-dir>/throughput-<backend>-<device>.json` and `.md`; the method and the
figures are in benchmarks/README.md.
"""

import argparse
import datetime
import os
import statistics
import time

from contestants import (
    REPOSITORY,
    TIMM_DEIT,
    configure_device,
    keras_jit,
    keras_steps,
    timm_references,
    timm_steps,
)
from memory import memory_figures
from report import git_commit, machine_description, markdown_tables, versions, write_report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=["convit_tiny", "convit_small"], choices=sorted(TIMM_DEIT)
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=None,
        choices=["float32", "bfloat16"],
        help="default: float32 on a CPU, float32 and bfloat16 on a GPU",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["forward", "train", "memory"],
        choices=["forward", "train", "memory"],
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--depth",
        type=int,
        default=None,
        help="fewer blocks on every side, for a quick check (default: 12)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="forward batch")
    parser.add_argument("--train-batch-size", type=int, default=16)
    parser.add_argument(
        "--memory-batch-size", type=int, default=64, help="batch of the forward peak-memory figures"
    )
    parser.add_argument(
        "--memory-dtypes",
        nargs="+",
        default=["float32"],
        choices=["float32", "bfloat16"],
        help="dtypes with memory figures",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved timing rounds; the median round is reported",
    )
    parser.add_argument("--iters", type=int, default=2, help="batches timed per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches after the first")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument(
        "--jit-compile",
        default="auto",
        choices=["auto", "true", "false"],
        help="Keras' jit_compile: auto keeps the backend's default",
    )
    parser.add_argument(
        "--memory-jobs",
        type=int,
        default=1,
        help="memory subprocesses run at once (each measures only itself)",
    )
    parser.add_argument("--no-timm", action="store_true", help="measure keras_convit only")
    parser.add_argument("--output-dir", default=os.path.join(REPOSITORY, "benchmarks", "results"))
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds of rest before each contestant's turn"
    )
    args = parser.parse_args(argv)
    if args.depth is not None and args.depth < 2:
        parser.error("--depth must be at least 2 (GPSA blocks, then the class token)")
    if args.dtypes is None:
        args.dtypes = ["float32"] if args.device == "cpu" else ["float32", "bfloat16"]
    return args


def check_device(device, backend):
    if device != "gpu":
        return
    if backend == "jax":
        import jax

        ok = jax.default_backend() == "gpu"
    elif backend == "tensorflow":
        import tensorflow as tf

        ok = bool(tf.config.list_physical_devices("GPU"))
    else:
        import torch

        ok = torch.cuda.is_available()
    if not ok:
        raise SystemExit(f"--device gpu: the {backend} backend sees no GPU.")


def contestants(args, variant, dtype):
    """{label: make(mode, batch_size)} for keras_convit and its two timm references."""
    makers = {
        "keras_convit": keras_steps(
            variant, args.image_size, dtype, keras_jit(args.jit_compile), args.depth
        )
    }
    if not args.no_timm:
        for role, name in zip(("timm_convit", "timm_deit"), timm_references(variant), strict=True):
            makers[role] = timm_steps(name, args.image_size, dtype, args.device, args.depth)
    return makers


def time_interleaved(steps, batch_size, rounds, iters, warmup, pause=0.0):
    """Images/s of each step: the median of `rounds` rounds, the steps taking turns each round,
    each turn after `pause` seconds of rest."""
    results = {}
    for label, step in steps.items():
        start = time.perf_counter()
        step()
        results[label] = {"first_call_s": round(time.perf_counter() - start, 2)}
        for _ in range(warmup):
            step()
    for _ in range(rounds):
        for label, step in steps.items():
            time.sleep(pause)
            start = time.perf_counter()
            for _ in range(iters):
                step()
            rate = batch_size * iters / (time.perf_counter() - start)
            results[label].setdefault("rounds", []).append(round(rate, 2))
    for result in results.values():
        result["images_per_s"] = round(statistics.median(result["rounds"]), 2)
    return results


def run(args):
    import keras

    backend = keras.backend.backend()
    check_device(args.device, backend)
    report = {
        "backend": backend,
        "device": args.device,
        "jit_compile": args.jit_compile,
        "resolved_jit_compile": None,
        "image_size": args.image_size,
        "depth": args.depth,
        "machine": machine_description(args.device),
        "versions": versions(),
        "commit": git_commit(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "settings": {
            key: getattr(args, key)
            for key in (
                "rounds",
                "iters",
                "warmup",
                "batch_size",
                "train_batch_size",
                "memory_batch_size",
                "memory_dtypes",
                "models",
                "dtypes",
                "modes",
            )
        },
        "results": [],
    }
    for variant in args.models:
        for dtype in args.dtypes:
            timed = {"forward", "train"} & set(args.modes)
            makers = contestants(args, variant, dtype) if timed else {}
            if makers:
                report["resolved_jit_compile"] = makers["keras_convit"].jit_compile
            for mode in ("forward", "train"):
                if mode not in args.modes:
                    continue
                batch_size = args.batch_size if mode == "forward" else args.train_batch_size
                steps = {label: make(mode, batch_size) for label, make in makers.items()}
                timings = time_interleaved(
                    steps, batch_size, args.rounds, args.iters, args.warmup, args.pause
                )
                del steps
                report["results"].append(
                    dict(
                        model=variant,
                        dtype=dtype,
                        mode=mode,
                        batch_size=batch_size,
                        timings=timings,
                    )
                )
                print(
                    f"{variant} {dtype} {mode}: "
                    + ", ".join(
                        f"{label} {value['images_per_s']} img/s" for label, value in timings.items()
                    ),
                    flush=True,
                )
            del makers
            keras.backend.clear_session()
            if "memory" in args.modes and dtype in args.memory_dtypes:
                report["results"].append(
                    dict(
                        model=variant,
                        dtype=dtype,
                        mode="memory",
                        figures=memory_figures(args, variant, dtype),
                    )
                )
    report["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    report["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    return report


def main(argv=None):
    args = parse_args(argv)
    configure_device(args.device)
    report = run(args)
    stem = f"throughput-{report['backend']}-{args.device}"
    json_path, markdown_path = write_report(report, args.output_dir, stem)
    print(markdown_tables([report]))
    print(f"Wrote {json_path} and {markdown_path}")


if __name__ == "__main__":
    main()
