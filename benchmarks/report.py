"""The benchmark's report: the machine, the versions, and Markdown tables with every figure's ratio
to timm."""

import contextlib
import json
import os
import platform
import subprocess

from contestants import REPOSITORY, labels


def machine_description(device):
    description = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    description["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as meminfo:
            description["memory_gib"] = round(int(meminfo.readline().split()[1]) / 1024**2, 1)
    if device == "gpu":
        import torch

        description["gpu"] = torch.cuda.get_device_name(0)
    return description


def versions(extra=()):
    """Versions of the frameworks (and of the `extra` packages) installed."""
    import importlib.metadata as metadata

    found = {}
    packages = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "timm")
    for package in packages + tuple(extra):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def git_commit():
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "-C", REPOSITORY, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return None


def ratio(value, reference):
    return f"{value / reference:.2f}x" if reference else "-"


def markdown_tables(reports):
    """Markdown tables of one or more reports (one per backend), side by side ratios."""
    first = reports[0]
    machine = first["machine"]
    lines = [
        f"Machine: {machine.get('cpu', 'unknown CPU')}, {machine['cores']} cores, "
        f"{machine.get('memory_gib', '?')} GiB"
        + (f", {machine['gpu']}" if "gpu" in machine else "")
        + f"; {first['image_size']}x{first['image_size']} images; "
        + ", ".join(f"{name} {version}" for name, version in first["versions"].items())
        + ".",
        "Load average (1 min) at start / end: "
        + "; ".join(
            f"{r['backend']} {r['load_average']['start'][0]} / "
            f"{r['load_average'].get('end', ['?'])[0]}"
            for r in reports
        )
        + ".",
        "",
    ]
    for mode, title in (
        ("forward", "Forward (inference)"),
        ("train", "Training step (forward, backward, AdamW)"),
    ):
        rows = [(r, row) for r in reports for row in r["results"] if row["mode"] == mode]
        if not rows:
            continue
        batch = rows[0][1]["batch_size"]
        lines += [
            f"**{title}, batch {batch}, images/s** (median of interleaved rounds)",
            "",
            "| model | backend (jit) | dtype | keras_convit | timm ConViT | timm DeiT "
            "| vs timm ConViT | vs timm DeiT |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for report, row in rows:
            timings = row["timings"]
            ours = timings["keras_convit"]["images_per_s"]
            convit = timings.get("timm_convit", {}).get("images_per_s")
            deit = timings.get("timm_deit", {}).get("images_per_s")
            convit_label, deit_label = labels(row["model"])
            lines.append(
                f"| {convit_label} | {report['backend']} ({jit_label(report)}) | {row['dtype']} "
                f"| {ours:.1f} | {convit or '-'} | {deit or '-'} "
                f"| {ratio(ours, convit)} | {ratio(ours, deit)} |"
            )
        lines.append("")
    rows = [(r, row) for r in reports for row in r["results"] if row["mode"] == "memory"]
    if rows:
        forward_batch = rows[0][1]["figures"].get("forward", {}).get("batch_size")
        train_batch = rows[0][1]["figures"].get("train", {}).get("batch_size")
        lines += [
            f"**Peak memory, MiB** (growth over one steady-state step, fresh process per figure): "
            f"forward at batch {forward_batch}, training step at batch {train_batch}",
            "",
            "| model | backend (jit) | dtype | step | keras_convit fast | keras_convit explicit "
            "| timm ConViT | timm DeiT |",
            "|---|---|---|---|---:|---:|---:|---:|",
        ]
        for report, row in rows:
            for mode, figures in row["figures"].items():

                def peak(label, figures=figures):
                    return figures[label]["peak_mib"] if label in figures else "-"

                lines.append(
                    f"| {labels(row['model'])[0]} | {report['backend']} ({jit_label(report)}) "
                    f"| {row['dtype']} | {mode} | {peak('keras_convit')} "
                    f"| {peak('keras_convit_explicit')} | {peak('timm_convit')} "
                    f"| {peak('timm_deit')} |"
                )
        lines.append("")
    return "\n".join(lines)


def jit_label(report):
    jit = report.get("resolved_jit_compile")
    if jit is None:
        return report["jit_compile"]
    if not jit:
        return "eager" if report["backend"] == "torch" else "no XLA"
    return "torch.compile" if report["backend"] == "torch" else "XLA"


def write_report(report, output_dir, stem, markdown=None, echo=False):
    """Writes `<stem>.json` and `<stem>.md` (`markdown(reports)`, default `markdown_tables`);
    `echo` also prints the Markdown and where both went."""
    markdown = markdown or markdown_tables
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, stem + ".json")
    with open(json_path, "w") as file:
        json.dump(report, file, indent=1)
    markdown_path = os.path.join(output_dir, stem + ".md")
    with open(markdown_path, "w") as file:
        file.write(markdown(report if isinstance(report, list) else [report]))
    if echo:
        with open(markdown_path) as file:
            print(file.read())
        print(f"Wrote {json_path} and {markdown_path}")
    return json_path, markdown_path
