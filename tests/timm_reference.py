"""The timm reference implementation for parity tests, imported offline.

`import_timm` is `keras_convit._timm_import.import_timm`: it works around the CUDA-linked
torchvision installed beside the CPU torch pinned here (see that module). Offline: without
`HF_HUB_OFFLINE`, a `pretrained=True` call spends about 46 s retrying before it fails.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from keras_convit._timm_import import import_timm  # noqa: E402

__all__ = ["import_timm"]
