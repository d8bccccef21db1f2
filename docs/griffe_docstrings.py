"""A griffe extension for the API pages: renders keras_convit's docstrings as they are written.

The docstrings put their `>>>` examples flush under "Example:" (so `tests/test_docstrings.py`
runs them as doctests), where Google style wants an indented section; as plain Markdown those
lines would become nested block quotes. This extension fences each run of `>>>` lines and their
output as a `pycon` code block, and joins an argument entry that lists several names over two
lines ("a, b, c,\n    d: as X.") into one line, as Google style reads it. It changes docstring
text only; nothing is imported.
"""

import griffe

PROMPTS = (">>>", "...")


def fence_doctests(text):
    """`text` with every doctest run (prompt lines and the output up to a blank line) fenced."""
    lines = text.split("\n")
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if not stripped.startswith(">>>"):
            out.append(line)
            index += 1
            continue
        indent = line[: len(line) - len(stripped)]
        block = []
        while index < len(lines) and lines[index].strip():
            current = lines[index]
            block.append(current[len(indent) :] if current.startswith(indent) else current.lstrip())
            index += 1
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```"]
    return "\n".join(out)


def join_wrapped_names(text):
    """`text` with each entry line "name, name," (no colon) joined to its indented next line;
    doctest runs (from a `>>>` line to the next blank line) are left as they are."""
    out, in_doctest = [], False
    for line in text.split("\n"):
        in_doctest = line.lstrip().startswith(PROMPTS) or (in_doctest and bool(line.strip()))
        previous = out[-1] if out else ""
        indent = len(previous) - len(previous.lstrip())
        if (
            not in_doctest
            and previous.rstrip().endswith(",")
            and ":" not in previous
            and len(line) - len(line.lstrip()) > indent
            and line.strip()
        ):
            out[-1] = f"{previous.rstrip()} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctest examples of every docstring before it is parsed."""

    def on_object(self, *, obj, **kwargs):
        if obj.docstring is None:
            return
        text = join_wrapped_names(obj.docstring.value)
        if ">>>" in text:
            text = fence_doctests(text)
        obj.docstring.value = text
