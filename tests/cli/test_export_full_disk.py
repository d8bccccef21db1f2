"""`keras-convit export` under a full disk: one line and exit status 2, nothing left behind (the
exporter is replaced by one that fills the disk: no real export, fast on every backend)."""

import errno
import os

from keras_convit.cli import main
from keras_convit.deploy import ARTIFACT_SUFFIXES, export, export_formats


def test_a_full_disk_during_export_is_one_line(workspace, tmp_path, monkeypatch, capsys):
    format = export_formats()[0]

    def full_disk(model, path):
        os.makedirs(path)
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(path, "variables"))

    monkeypatch.setitem(export._EXPORTERS, format, full_disk)
    output = tmp_path / f"model{ARTIFACT_SUFFIXES[format] or '_saved'}"
    status = main(["export", str(workspace.keras_model), str(output), "--format", format])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("keras-convit export: error: ")
    assert f"no space left to write the {format} artefact {output}" in err[0]
    assert os.listdir(tmp_path) == []
