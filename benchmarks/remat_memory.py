"""Peak memory of one training step of the main job's model with and without `--remat`, per
backend, each figure in a fresh process:

python benchmarks/remat_memory.py                          # ConViT-S, 224x224, batch 8, 3 backends
python benchmarks/remat_memory.py --backends jax --batch-size 16 --device gpu

The step is the job's own: `build_model` and `compile_portably` on the DeiT recipe (drop path
0.1, XLA on TensorFlow and JAX, eager PyTorch), float32 unless `--dtype-policy`. The figure is
measured as `memory.py` measures it: after two steps (compilation, allocator warm-up), on a CPU
the growth of the process' peak resident set (VmHWM, reset after `malloc_trim`) over a third
step, TensorFlow with its oneDNN allocator off; on a GPU the framework allocator's peak over the
third step. Results go to benchmarks/results/remat_memory-<device>.{json,md}.

On a CPU, JAX's XLA schedules for concurrency, not memory: remat saves nothing there unless
`XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false` (docs/training.md).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from contestants import REPOSITORY, configure_device
from memory import DeviceMemory, _proc_status_kib, _reset_peak_rss
from report import git_commit, machine_description, versions, write_report

BACKENDS = ("tensorflow", "jax", "torch")


def measure(spec):
    """{"peak_mib", "step_seconds", "method"} of one training step of `spec`'s model, in this
    process (its backend is the one Keras was imported with)."""
    import keras
    import numpy as np

    sys.path.insert(0, REPOSITORY)
    from keras_convit.job import TrainConfig, build_model
    from keras_convit.models.default_compile import compile_portably

    config = TrainConfig(
        model=spec["model"],
        model_args=spec.get("model_args", {}),
        image_size=spec["image_size"],
        batch_size=spec["batch_size"],
        dtype_policy=spec["dtype_policy"],
        remat=spec["remat"],
    ).resolved()
    keras.utils.set_random_seed(0)  # the same weights and drop-path draws with remat or not
    model = build_model(config, spec["classes"])
    compile_portably(model, **config.compile_arguments(model, steps_per_epoch=100))
    rng = np.random.default_rng(0)
    shape = (spec["batch_size"], spec["image_size"], spec["image_size"], 3)
    images = keras.ops.convert_to_tensor(rng.uniform(0, 255, shape).astype("float32"))
    labels = keras.ops.convert_to_tensor(rng.integers(0, spec["classes"], shape[:1]))

    def step():
        logs = model.train_on_batch(images, labels, return_dict=True)
        return float(keras.ops.convert_to_numpy(logs["loss"]))

    step()
    step()
    if spec["device"] == "cpu":
        _reset_peak_rss()
        before = _proc_status_kib("VmRSS")
        start = time.perf_counter()
        loss = step()
        seconds = time.perf_counter() - start
        peak = (_proc_status_kib("VmHWM") - before) / 1024
        method = "process peak RSS"
    else:
        memory = DeviceMemory(keras.backend.backend())
        memory.reset()
        before, _ = memory.current_and_peak()
        start = time.perf_counter()
        loss = step()
        seconds = time.perf_counter() - start
        peak = (memory.current_and_peak()[1] - before) / 1024**2
        method = f"{keras.backend.backend()} allocator peak"
    return {
        "peak_mib": round(peak, 1),
        "step_seconds": round(seconds, 2),
        "loss": round(loss, 4),
        "method": method,
    }


def measure_in_child(spec, backend):
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if spec["device"] == "cpu":
        environment["TF_ENABLE_ONEDNN_OPTS"] = "0"  # its pool hides freed memory from the RSS
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode:
        raise RuntimeError(f"{backend} {spec} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def markdown(reports):
    report = reports[0]
    lines = [
        f"Peak memory of one training step, {report['model']} at {report['image_size']}x"
        f"{report['image_size']}, batch {report['batch_size']}, {report['dtype_policy']}, "
        f"{report['device']} ({report['rows'][0]['method'] if report['rows'] else ''})"
        + (f", XLA_FLAGS={report['xla_flags']}" if report.get("xla_flags") else "")
        + ".",
        "",
        "| backend | without remat | with remat | saved | step without | step with | loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        plain, remat = row["without"], row["with"]
        saved = 1 - remat["peak_mib"] / plain["peak_mib"] if plain["peak_mib"] else 0.0
        lines.append(
            f"| {row['backend']} | {plain['peak_mib']:.0f} MiB | {remat['peak_mib']:.0f} MiB | "
            f"{saved:.0%} | {plain['step_seconds']:.1f} s | {remat['step_seconds']:.1f} s | "
            f"{plain['loss']:.4f} / {remat['loss']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=BACKENDS, choices=BACKENDS)
    parser.add_argument("--model", default="convit_small")
    parser.add_argument("--model-args", type=json.loads, default={})
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dtype-policy", default="float32")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--output-dir", default=os.path.join(REPOSITORY, "benchmarks", "results"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        configure_device(spec["device"])
        print(json.dumps(measure(spec)))
        return
    spec = {
        "model": args.model,
        "model_args": args.model_args,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "classes": args.classes,
        "dtype_policy": args.dtype_policy,
        "device": args.device,
    }
    rows = []
    for backend in args.backends:
        row = {"backend": backend}
        for label, remat in (("without", False), ("with", True)):
            row[label] = measure_in_child({**spec, "remat": remat}, backend)
            print(f"{backend} {label} remat: {row[label]}", flush=True)
        row["method"] = row["without"]["method"]
        rows.append(row)
    report = {
        **spec,
        "rows": rows,
        "machine": machine_description(args.device),
        "versions": versions(),
        "commit": git_commit(),
        "load_average": os.getloadavg(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }
    write_report(report, args.output_dir, f"remat_memory-{args.device}", markdown, echo=True)


if __name__ == "__main__":
    main()
