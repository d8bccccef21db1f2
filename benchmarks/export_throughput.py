"""Forward throughput of keras_convit's exported artefacts, each in its own runtime, against timm's
ConViT and DeiT exported to ONNX, all timed side by side in one process.

    KERAS_BACKEND=tensorflow python benchmarks/export_throughput.py --profile
    KERAS_BACKEND=torch python benchmarks/export_throughput.py --formats onnx

keras_convit's model (the preset, timm's weights loaded through `load_reference_state_dict`,
logits out) is exported from the current Keras backend to every format of
`keras_convit.deploy.export_formats()` with `keras_convit.deploy.export_model` (which checks
each artefact against `model.predict`). timm's `convit_tiny` and DeiT of the same size are
exported with `torch.onnx.export` (the dynamo exporter; the TorchScript one only if dynamo
fails). Every artefact runs with the same number of threads: onnxruntime (intra-op threads,
`ORT_ENABLE_ALL`), the LiteRT interpreter (`num_threads`), TensorFlow (intra-op threads) and
torch (`torch.set_num_threads`). The contestants take turns in interleaved rounds
(`throughput.time_interleaved`) and the figure is the median round. `--profile` adds, per
ONNX artefact, onnxruntime's time per operator type and the op counts of the graph before and
after onnxruntime's optimisation. Results go to
`<output-dir>/export-throughput-<backend>-cpu.json` and `.md`; see benchmarks/README.md.
"""

import argparse
import collections
import datetime
import json
import os
import sys
import tempfile
import time

from contestants import (
    REPOSITORY,
    TIMM_DEIT,
    configure_device,
    labels,
    reduced_depth,
    timm_model,
    timm_references,
)
from report import git_commit, machine_description, ratio, versions, write_report
from throughput import time_interleaved

EXPORT_PACKAGES = ("onnx", "onnxruntime", "tf2onnx", "jax2onnx", "onnxscript", "ai-edge-litert")
RUNTIMES = {
    "onnx": "onnxruntime",
    "litert": "LiteRT interpreter",
    "tf_saved_model": "TensorFlow",
    "torch": "torch.export",
}
# The project's targets: keras_convit's ONNX artefact against timm's, both in onnxruntime.
TARGETS = {"timm_convit": 1.0, "timm_deit": 0.95}
# Share of the profiled time above which an operator type is listed in the Markdown.
PROFILE_SHARE = 0.02


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="convit_tiny", choices=sorted(TIMM_DEIT))
    parser.add_argument(
        "--formats", nargs="+", default=None, help="default: every format of the backend"
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--depth", type=int, default=None, help="fewer blocks on every side (default: 12)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="threads of every runtime")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds; the median is reported"
    )
    parser.add_argument("--iters", type=int, default=2, help="batches timed per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches after the first")
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds of rest before each contestant's turn"
    )
    parser.add_argument(
        "--no-timm",
        action="store_true",
        help="keras_convit's artefacts only (random weights, no ratios)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="onnxruntime's time per operator type, and op counts, of each ONNX artefact",
    )
    parser.add_argument("--profile-runs", type=int, default=3, help="batches profiled")
    parser.add_argument(
        "--artifact-dir", default=None, help="keep the artefacts here (default: a temporary one)"
    )
    parser.add_argument("--output-dir", default=os.path.join(REPOSITORY, "benchmarks", "results"))
    args = parser.parse_args(argv)
    if args.depth is not None and args.depth < 2:
        parser.error("--depth must be at least 2 (GPSA blocks, then the class token)")
    return args


def limit_threads(backend, formats, threads):
    """Every runtime on `threads` threads; TensorFlow's pool only where TensorFlow runs, and
    before its first op. Returns {runtime: threads} as set."""
    import torch

    torch.set_num_threads(threads)
    limits = {"torch": threads, "onnxruntime": threads, "litert": threads}
    if backend == "tensorflow" or "tf_saved_model" in formats:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        limits["tensorflow_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
    return limits


def keras_model(args, timm_convit):
    """The preset as a logits model; timm's weights when `timm_convit` is given."""
    sys.path.insert(0, REPOSITORY)
    from keras_convit.models import from_preset
    from keras_convit.weights.loading import load_reference_state_dict

    model = from_preset(
        args.model,
        **reduced_depth(args.depth),
        input_shape=(args.image_size, args.image_size, 3),
        classes=1000,
        classifier_activation=None,
        weights=None,
        compile=False,
    )
    if timm_convit is not None:
        state = {key: value.numpy() for key, value in timm_convit.state_dict().items()}
        load_reference_state_dict(model, state, source="timm")
    return model


def export_keras(model, formats, directory):
    """{format: (path, export report, seconds)} of `export_model` for each format."""
    from keras_convit.deploy import ARTIFACT_SUFFIXES, export_model

    backend = model_backend()
    exported = {}
    for format in formats:
        path = os.path.join(directory, f"keras-{backend}-{format}{ARTIFACT_SUFFIXES[format]}")
        start = time.perf_counter()
        report = export_model(model, path, format=format)
        exported[format] = (path, report, round(time.perf_counter() - start, 1))
        print(f"exported {format} in {exported[format][2]} s", flush=True)
    return exported


def export_timm_onnx(model, image_size, path):
    """timm's model to ONNX with a free batch: the dynamo exporter, else TorchScript's.
    Returns the exporter's name."""
    import torch

    sample = torch.zeros(2, 3, image_size, image_size)
    try:
        program = torch.onnx.export(
            model,
            (sample,),
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            input_names=["images"],
            verbose=False,
        )
        program.optimize()
        program.save(path)
        return f"torch.onnx.export(dynamo=True), opset {program.model.opset_imports['']}"
    except Exception as error:  # any failure of the dynamo exporter: fall back, and say so
        print(f"dynamo export failed ({type(error).__name__}); TorchScript exporter", flush=True)
        torch.onnx.export(
            model,
            (sample,),
            path,
            dynamo=False,
            input_names=["images"],
            dynamic_axes={"images": {0: "batch"}},
        )
        return "torch.onnx.export(dynamo=False)"


def model_backend():
    import keras

    return keras.backend.backend()


def onnx_session(path, threads, profile_prefix=None, optimized_path=None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # not the warning that the optimised graph fits this CPU only
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def runner(format, path, images, threads):
    """(one batch -> numpy outputs) of the artefact at `path` in its runtime, on `images`."""
    if format == "onnx":
        session = onnx_session(path, threads)
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: images})[0]
    if format == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=threads)
        (details,) = interpreter.get_input_details()
        output = interpreter.get_output_details()[0]["index"]
        interpreter.resize_tensor_input(details["index"], images.shape)  # sized once
        interpreter.allocate_tensors()

        def run_litert():
            interpreter.set_tensor(details["index"], images)
            interpreter.invoke()
            return interpreter.get_tensor(output)

        return run_litert
    if format == "tf_saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(path).signatures["serving_default"]
        ((name, _),) = signature.structured_input_signature[1].items()
        tensor = tf.constant(images)
        return lambda: next(iter(signature(**{name: tensor}).values())).numpy()
    if format == "torch":
        import torch

        module = torch.export.load(path).module()
        tensor = torch.from_numpy(images)

        def run_program():
            with torch.inference_mode():
                return module(tensor).numpy()

        return run_program
    raise ValueError(f"No runtime for {format!r}.")


def timm_inputs(images):
    """keras_convit's input (NHWC, [0, 255]) as timm takes it: NCHW, ImageNet-normalised."""
    import numpy as np

    sys.path.insert(0, REPOSITORY)
    from keras_convit.presets import IMAGENET_MEAN, IMAGENET_STD

    normalised = (images / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2), dtype="float32")


def timm_logits(model, images):
    import torch

    with torch.inference_mode():
        return model.eval()(torch.from_numpy(images)).numpy()


def graph_summary(path, optimized_path):
    """Op counts of the ONNX graph as written and after onnxruntime's ORT_ENABLE_ALL."""
    import onnx

    def counts(file):
        graph = onnx.load(file, load_external_data=False).graph
        found = collections.Counter(node.op_type for node in graph.node)
        return dict(found.most_common())

    return {"written": counts(path), "optimized": counts(optimized_path)}


def profile_onnx(path, images, threads, runs, directory):
    """onnxruntime's kernel time per operator type, ms per batch (mean of `runs` batches),
    and the graph's op counts before and after its optimisation."""
    stem = os.path.join(directory, os.path.splitext(os.path.basename(path))[0])
    session = onnx_session(path, threads, stem + "-profile", stem + "-optimized.onnx")
    name = session.get_inputs()[0].name
    for _ in range(runs + 1):  # the first run (allocations, first-run work) is left out
        session.run(None, {name: images})
    profile_file = session.end_profiling()
    with open(profile_file) as file:
        events = json.load(file)
    os.remove(profile_file)
    runs_seen = sorted(
        (event["ts"], event["ts"] + event["dur"])
        for event in events
        if event.get("cat") == "Session" and event["name"] == "model_run"
    )
    first_run_end = runs_seen[0][1]
    per_type = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        if event["ts"] >= first_run_end:
            per_type[event["args"]["op_name"]] += event["dur"] / 1000 / runs
    total = sum(per_type.values())
    return {
        "kernel_ms_per_batch": round(total, 1),
        "ms_per_batch_by_op": {op: round(ms, 2) for op, ms in per_type.most_common()},
        "ops": graph_summary(path, stem + "-optimized.onnx"),
    }


def contestants(args, directory, images):
    """{label: (description, one-batch runner, logits reference or None)} and what was
    exported, for keras_convit's artefacts and timm's ONNX exports."""
    import numpy as np

    backend = model_backend()
    formats = args.formats or list(keras_export_formats())
    limits = limit_threads(backend, formats, args.threads)
    timm_models = {}
    if not args.no_timm:
        for role, name in zip(
            ("timm_convit", "timm_deit"), timm_references(args.model), strict=True
        ):
            timm_models[role] = (name, timm_model(name, args.image_size, args.depth).eval())
    model = keras_model(args, timm_models.get("timm_convit", (None, None))[1])
    entries = {}
    for format, (path, report, seconds) in export_keras(model, formats, directory).items():
        entries[f"keras_convit_{format}"] = dict(
            model=labels(args.model)[0],
            source=f"keras_convit ({backend})",
            format=format,
            runtime=RUNTIMES[format],
            exporter=exporter_name(backend, format),
            path=path,
            export_s=seconds,
            max_abs_difference_to_keras=report.max_abs_difference,
            images=images,
            reference="timm_convit" if timm_models else None,
        )
    del model
    timm_images = timm_inputs(images)
    for role, (name, module) in timm_models.items():
        path = os.path.join(directory, f"timm-{name}.onnx")
        start = time.perf_counter()
        exporter = export_timm_onnx(module, args.image_size, path)
        seconds = round(time.perf_counter() - start, 1)
        print(f"exported timm {name} to ONNX in {seconds} s ({exporter})", flush=True)
        entries[f"{role}_onnx"] = dict(
            model=name,
            source="timm",
            format="onnx",
            runtime=RUNTIMES["onnx"],
            exporter=exporter,
            path=path,
            export_s=seconds,
            images=timm_images,
            reference=role,
        )
    references = {
        role: timm_logits(module, timm_images) for role, (_, module) in timm_models.items()
    }
    steps = {}
    for label, entry in entries.items():
        steps[label] = runner(entry["format"], entry["path"], entry.pop("images"), args.threads)
        if entry["reference"]:
            outputs = steps[label]()
            difference = np.max(np.abs(outputs - references[entry["reference"]]))
            entry["max_abs_logit_difference_to_timm"] = float(difference)
    return entries, steps, limits, formats


def keras_export_formats():
    sys.path.insert(0, REPOSITORY)
    from keras_convit.deploy import export_formats

    return export_formats()


def exporter_name(backend, format):
    if format == "onnx":
        return {
            "tensorflow": "tf2onnx (Keras model.export)",
            "jax": "jax2onnx (Keras model.export)",
            "torch": "torch.onnx.export(dynamo=True)",
        }[backend]
    return {
        "litert": "Keras model.export (TFLite converter)",
        "tf_saved_model": "Keras model.export" + (" (jax2tf)" if backend == "jax" else ""),
        "torch": "torch.export (Keras model.export)",
    }[format]


def ratios(entries, timings):
    """keras_convit's ONNX artefact against timm's ONNX exports, and the targets."""
    ours = timings.get("keras_convit_onnx", {}).get("images_per_s")
    found = {}
    for role, target in TARGETS.items():
        theirs = timings.get(f"{role}_onnx", {}).get("images_per_s")
        if ours and theirs:
            value = round(ours / theirs, 3)
            found[role] = {"ratio": value, "target": target, "met": value >= target}
    return found


def run(args, directory):
    import numpy as np

    shape = (args.batch_size, args.image_size, args.image_size, 3)
    images = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    report = {
        "backend": model_backend(),
        "device": "cpu",
        "model": args.model,
        "image_size": args.image_size,
        "depth": args.depth,
        "batch_size": args.batch_size,
        "machine": machine_description("cpu"),
        "versions": versions(EXPORT_PACKAGES),
        "commit": git_commit(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "settings": {
            key: getattr(args, key) for key in ("rounds", "iters", "warmup", "pause", "threads")
        },
    }
    entries, steps, limits, formats = contestants(args, directory, images)
    report["formats"] = formats
    report["threads"] = limits
    report["load_average"]["before_timing"] = [round(x, 2) for x in os.getloadavg()]
    timings = time_interleaved(
        steps, args.batch_size, args.rounds, args.iters, args.warmup, args.pause
    )
    report["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    for label, entry in entries.items():
        entry.update(timings[label])
        entry["path"] = os.path.basename(entry["path"])
        if args.profile and entry["format"] == "onnx":
            print(f"profiling {label}", flush=True)
            source = os.path.join(directory, entry["path"])
            inputs = timm_inputs(images) if entry["source"] == "timm" else images
            entry["profile"] = profile_onnx(
                source, inputs, args.threads, args.profile_runs, directory
            )
    report["results"] = entries
    report["ratios"] = ratios(entries, timings)
    report["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    return report


def markdown(reports):
    """The figures of one or more reports (one per backend) as Markdown tables."""
    lines = []
    for report in reports:
        machine, load = report["machine"], report["load_average"]
        lines += [
            f"### {labels(report['model'])[0]} exported from Keras' {report['backend']} backend",
            "",
            f"Machine: {machine.get('cpu', 'unknown CPU')}, {machine['cores']} cores, "
            f"{machine.get('memory_gib', '?')} GiB; {report['image_size']}x"
            f"{report['image_size']} images, batch {report['batch_size']}, float32"
            + (f", depth {report['depth']}" if report["depth"] else "")
            + f", {report['settings']['threads']} threads per runtime; commit {report['commit']}.",
            "Versions: "
            + ", ".join(f"{name} {version}" for name, version in report["versions"].items())
            + ".",
            f"Load average (1, 5, 15 min): start {load['start']}, timing "
            f"{load.get('before_timing', '?')} to {load.get('end', '?')}.",
            "",
            "| artefact | exporter | runtime | images/s | vs timm ConViT ONNX | vs timm DeiT ONNX "
            "| max abs logit diff to timm |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        results = report["results"]
        convit = results.get("timm_convit_onnx", {}).get("images_per_s")
        deit = results.get("timm_deit_onnx", {}).get("images_per_s")
        for entry in results.values():
            difference = entry.get("max_abs_logit_difference_to_timm")
            lines.append(
                f"| {entry['source']} {entry['model']} {entry['format']} | {entry['exporter']} "
                f"| {entry['runtime']} | {entry['images_per_s']:.1f} "
                f"| {ratio(entry['images_per_s'], convit)} | {ratio(entry['images_per_s'], deit)} "
                f"| {'-' if difference is None else f'{difference:.1e}'} |"
            )
        lines.append("")
        for role, found in report.get("ratios", {}).items():
            lines.append(
                f"- keras_convit ONNX / {role.replace('_', ' ')} ONNX: {found['ratio']:.2f}x "
                f"(target {found['target']}x: {'met' if found['met'] else 'missed'})"
            )
        profiled = [entry for entry in results.values() if "profile" in entry]
        if profiled:
            lines += ["", profile_table(profiled)]
        lines.append("")
    return "\n".join(lines)


def profile_table(entries):
    """onnxruntime's kernel ms per batch by operator type, one column per ONNX artefact."""
    ops = collections.Counter()
    for entry in entries:
        profile = entry["profile"]
        for op, ms in profile["ms_per_batch_by_op"].items():
            if ms >= PROFILE_SHARE * profile["kernel_ms_per_batch"]:
                ops[op] += ms
    header = " | ".join(f"{entry['source']} {entry['model']}" for entry in entries)
    lines = [
        "onnxruntime profile, kernel ms per batch by operator type (after ORT_ENABLE_ALL; "
        f"types under {PROFILE_SHARE:.0%} of every artefact's time left out), and node counts:",
        "",
        f"| op | {header} |",
        "|---|" + "---:|" * len(entries),
    ]
    for op, _ in ops.most_common():
        cells = []
        for entry in entries:
            ms = entry["profile"]["ms_per_batch_by_op"].get(op)
            count = entry["profile"]["ops"]["optimized"].get(op, 0)
            cells.append("-" if ms is None else f"{ms:.1f} ({count})")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    totals = " | ".join(
        f"{entry['profile']['kernel_ms_per_batch']:.1f} "
        f"({sum(entry['profile']['ops']['optimized'].values())})"
        for entry in entries
    )
    lines.append(f"| all kernels | {totals} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    configure_device("cpu")
    if args.artifact_dir:
        os.makedirs(args.artifact_dir, exist_ok=True)
        report = run(args, args.artifact_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="export-throughput-") as directory:
            report = run(args, directory)
    stem = f"export-throughput-{report['backend']}-cpu"
    write_report(report, args.output_dir, stem, markdown, echo=True)


if __name__ == "__main__":
    main()
