"""The timm reference implementation for parity tests, imported offline.

timm imports torchvision, whose compiled ops are linked against a CUDA build of torch and fail to
register beside the CPU build pinned here ("operator torchvision::nms does not exist"). ConViT
never uses those ops, so on that error the half-imported torchvision is dropped, its op
registrations are stubbed, and the import is retried.
"""

import os
import sys
import types

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def import_timm():
    """Returns the `timm` module, or raises ImportError if it is not installed."""
    try:
        import timm
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
        for name in [name for name in sys.modules if name.startswith(("torchvision", "timm"))]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations"
        )
        import timm
    return timm
