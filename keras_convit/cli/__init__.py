"""The `keras-convit` command (also `python -m keras_convit`): `keras-convit COMMAND --help`.

Each command is a module of this package with `configure_parser(parser)` and `run(args)`;
`COMMANDS` lists them; commands only parse, call the library and the job, and print. A user
error ends as one line, `keras-convit COMMAND: error: ...`, with exit status 2; `--debug` shows
the traceback instead.
"""

import argparse
import sys

from keras_convit.cli import convert, export, predict, train
from keras_convit.cli.errors import USAGE_ERROR_STATUS, USER_ERRORS, CommandFailed

# command -> (its module, one line of help).
COMMANDS = {
    "train": (train, "Train a ConViT (the main job; with no flags, on the embedded digits)."),
    "convert": (convert, "Convert weights between Keras files and reference (timm) checkpoints."),
    "predict": (
        predict,
        "Classify images with a model, weights or exported artefact (CSV or JSON).",
    ),
    "export": (
        export,
        "Export a model to a deployment format (ONNX, LiteRT, ...), checked in its runtime.",
    ),
}


class OneLineParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line (argparse prints the usage too)."""

    def error(self, message):
        self.exit(USAGE_ERROR_STATUS, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    """The `keras-convit` parser with every command's sub-parser."""
    parser = OneLineParser(
        prog="keras-convit",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        subparser = commands.add_parser(
            name, help=help_text, description=help_text, allow_abbrev=False
        )
        subparser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the full traceback of an error",
        )
        module.configure_parser(subparser)
        subparser.set_defaults(run=module.run, parser=subparser)
    return parser


def main(argv=None):
    """Runs `keras-convit` with `argv` (default: the process arguments); returns the exit status.

    Example:
    >>> main(["convert", "missing.safetensors", "out.weights.h5"])
    2
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if unknown:  # reported by the command's parser, so the message names the command
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.run(args) or 0
    except CommandFailed as error:
        if args.debug:
            raise
        print(f"keras-convit {args.command}: {one_line(error)}", file=sys.stderr)
        return error.status
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"keras-convit {args.command}: error: {one_line(error)}", file=sys.stderr)
        return USAGE_ERROR_STATUS


def one_line(error):
    """The message of `error` on one line (a multi-line message joined with "; ")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__
