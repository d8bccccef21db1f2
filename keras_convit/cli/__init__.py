"""The `keras-convit` command: `keras-convit <command> --help` for each command."""

import argparse
import importlib
import sys

# command -> module defining `configure_parser(parser)` and `run(args) -> int`.
COMMANDS = {
    "train": ("keras_convit.training.cli", "Train a ConViT (the main job)."),
    "convert": ("keras_convit.weights.convert", "Convert weights between Keras and reference."),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="keras-convit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # Skip a command whose module is absent, but not one that fails on its own imports.
            missing = error.name or ""
            if not (module_name == missing or module_name.startswith(missing + ".")):
                raise
            continue
        modules[name].configure_parser(commands.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
