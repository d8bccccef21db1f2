"""Peak memory of one step, each figure in a fresh process:

python benchmarks/memory.py '<spec JSON>'     # prints one JSON line; run by throughput.py
"""

import concurrent.futures
import contextlib
import ctypes
import json
import os
import subprocess
import sys

from contestants import (
    backend_name,
    configure_device,
    keras_jit,
    keras_steps,
    timm_references,
    timm_steps,
)


def _proc_status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss():
    """Returns freed heap to the OS and resets the peak RSS (VmHWM) to the current RSS."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


class DeviceMemory:
    """Bytes in use and peak bytes of the first GPU, per framework."""

    def __init__(self, framework):
        self.framework = framework
        self.device = "GPU:0"

    def reset(self):
        if self.framework == "torch":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif self.framework == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats(self.device)

    def current_and_peak(self):
        if self.framework == "torch":
            import torch

            torch.cuda.synchronize()
            return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
        if self.framework == "tensorflow":
            import tensorflow as tf

            info = tf.config.experimental.get_memory_info(self.device)
            return info["current"], info["peak"]
        import jax

        stats = jax.devices()[0].memory_stats()
        return stats["bytes_in_use"], stats["peak_bytes_in_use"]


def memory_child(spec):
    """Peak memory of one step in this (fresh) process, printed as a JSON line.

    The step runs twice first (compilation, allocator warm-up). Then, on a CPU, the heap is
    trimmed and the peak RSS reset, and the figure is the peak RSS over a third step minus the
    RSS just before it; TensorFlow runs with its oneDNN allocator off (`TF_ENABLE_ONEDNN_OPTS=0`,
    set by `main`), which would otherwise keep freed memory pooled, out of the RSS' sight. On a
    GPU it is the allocator's peak bytes over the third step minus the bytes in use before it.
    """
    mib = 1024**2
    if spec["kind"] == "timm":
        make = timm_steps(
            spec["model"], spec["image_size"], spec["dtype"], spec["device"], spec["depth"]
        )
        framework = "torch"
    else:
        make = keras_steps(
            spec["model"],
            spec["image_size"],
            spec["dtype"],
            spec["jit_compile"],
            spec["depth"],
            spec["explicit"],
        )
        framework = backend_name()
    step = make(spec["mode"], spec["batch_size"])
    step()
    step()
    if spec["device"] == "cpu":
        _reset_peak_rss()
        before = _proc_status_kib("VmRSS")
        step()
        result = {
            "method": "process peak RSS",
            "peak_mib": round((_proc_status_kib("VmHWM") - before) / 1024, 1),
        }
    else:
        memory = DeviceMemory(framework)
        memory.reset()
        before, _ = memory.current_and_peak()
        step()
        _, peak = memory.current_and_peak()
        result = {
            "method": f"{framework} allocator peak",
            "peak_mib": round((peak - before) / mib, 1),
        }
    result["resident_mib"] = round(_proc_status_kib("VmRSS") / 1024, 1)
    print(json.dumps(result))


def measure_memory(spec):
    command = [sys.executable, os.path.abspath(__file__), json.dumps(spec)]
    completed = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if completed.returncode:
        raise RuntimeError(f"memory child {spec} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def memory_figures(args, variant, dtype):
    common = dict(
        image_size=args.image_size,
        depth=args.depth,
        dtype=dtype,
        device=args.device,
        jit_compile=keras_jit(args.jit_compile),
    )
    specs = {
        ("forward", "keras_convit"): dict(kind="keras", model=variant, explicit=False),
        ("forward", "keras_convit_explicit"): dict(kind="keras", model=variant, explicit=True),
        ("train", "keras_convit"): dict(kind="keras", model=variant, explicit=False),
    }
    if not args.no_timm:
        for role, name in zip(("timm_convit", "timm_deit"), timm_references(variant), strict=True):
            specs[("forward", role)] = dict(kind="timm", model=name)
            specs[("train", role)] = dict(kind="timm", model=name)
    jobs = {}
    for (mode, label), spec in specs.items():
        batch_size = args.memory_batch_size if mode == "forward" else args.train_batch_size
        jobs[mode, label] = {**common, **spec, "mode": mode, "batch_size": batch_size}
    with concurrent.futures.ThreadPoolExecutor(args.memory_jobs) as pool:
        measured = dict(zip(jobs, pool.map(measure_memory, jobs.values()), strict=True))
    figures = {}
    for (mode, label), result in measured.items():
        figures.setdefault(mode, {"batch_size": jobs[mode, label]["batch_size"]})[label] = result
        print(f"  memory {variant} {dtype} {mode} {label}: {result}", flush=True)
    return figures


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    configure_device(spec["device"])
    if spec["device"] == "cpu":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    memory_child(spec)
