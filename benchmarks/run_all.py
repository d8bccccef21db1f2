"""Runs benchmarks/throughput.py for each Keras backend, each in its own process, and merges the
tables into `<output-dir>/throughput-all-<device>.json` and `.md`.

    python benchmarks/run_all.py                                   # defaults of throughput.py
    python benchmarks/run_all.py --max-load 1.2 -- --models convit_tiny --dtypes float32

Arguments after `--` go to throughput.py unchanged. `--max-load` waits (up to `--max-wait`
seconds) before each backend until the 1-minute load average is below it: on a shared machine the
absolute figures need a quiet machine, the ratios to timm less so (they are measured side by side).
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from throughput import write_report  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["tensorflow", "jax", "torch"],
        choices=["tensorflow", "jax", "torch"],
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=None,
        help="wait until the 1-minute load average is below this",
    )
    parser.add_argument("--max-wait", type=float, default=1800.0, help="seconds")
    parser.add_argument(
        "throughput_args", nargs=argparse.REMAINDER, help="-- then arguments for throughput.py"
    )
    args = parser.parse_args(argv)
    if args.throughput_args[:1] == ["--"]:
        args.throughput_args = args.throughput_args[1:]
    return args


def wait_for_load(max_load, max_wait):
    """Waits until the 1-minute load average is below `max_load`; returns the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        load = os.getloadavg()[0]
        if max_load is None or load < max_load or time.monotonic() > deadline:
            return load
        print(f"load average {load:.2f} >= {max_load}: waiting", flush=True)
        time.sleep(30)


def option(arguments, name, default):
    if name in arguments:
        return arguments[arguments.index(name) + 1]
    return default


def main(argv=None):
    args = parse_args(argv)
    device = option(args.throughput_args, "--device", "cpu")
    output_dir = option(args.throughput_args, "--output-dir", os.path.join(HERE, "results"))
    reports = []
    for backend in args.backends:
        load = wait_for_load(args.max_load, args.max_wait)
        print(f"== KERAS_BACKEND={backend} (load average {load:.2f}) ==", flush=True)
        environment = {**os.environ, "KERAS_BACKEND": backend}
        command = [sys.executable, os.path.join(HERE, "throughput.py"), *args.throughput_args]
        subprocess.run(command, env=environment, check=True)
        with open(os.path.join(output_dir, f"throughput-{backend}-{device}.json")) as file:
            reports.append(json.load(file))
    json_path, markdown_path = write_report(reports, output_dir, f"throughput-all-{device}")
    print(f"Wrote {json_path} and {markdown_path}")


if __name__ == "__main__":
    main()
