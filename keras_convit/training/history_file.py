"""A run's history as a CSV file: one row per epoch, one column per log key."""

import csv

from keras_convit._files import atomic_path


def write_history_csv(path, history):
    """Writes {key: [value per epoch]} as CSV with an `epoch` column (1-based), atomically."""
    keys = sorted(history)
    rows = max((len(values) for values in history.values()), default=0)
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", *keys])
        for row in range(rows):
            values = [history[key][row] if row < len(history[key]) else None for key in keys]
            writer.writerow([row + 1] + ["" if value is None else value for value in values])
