"""`import timm` beside a CPU build of torch and a CUDA build of torchvision.

timm imports torchvision. Where the installed torchvision was built against CUDA torch and the
installed torch is a CPU build (here: torch 2.13.0+cpu with torchvision 0.28.0+cu130, the only
torchvision 0.28.0 the package index offers), torchvision's compiled ops fail to load, and its
meta registrations then raise `RuntimeError: operator torchvision::nms does not exist`, so
`import timm` fails. ConViT (and DeiT) never use those ops (nms, roi_align, ...), so on that
error the half-imported modules are dropped, torchvision's op registrations are replaced by an
empty module, and the import is retried. torchvision's compiled ops stay unavailable.

Unnecessary, and a plain `import timm` then, once torch and torchvision are a matching pair
(both CPU builds, or both CUDA builds); the helper is a no-op there. Imports nothing of
keras_convit.

Usage, wherever the docs or tests write `import timm`:

    from keras_convit._timm_import import import_timm

    timm = import_timm()
    reference = timm.create_model("convit_tiny")
"""

import sys
import types

_MISSING_OP = "torchvision::nms"


def import_timm():
    """Returns the `timm` module; raises ImportError if timm (or torch) is not installed."""
    try:
        import timm
    except RuntimeError as error:
        if _MISSING_OP not in str(error):
            raise
        for name in [name for name in sys.modules if name.startswith(("torchvision", "timm"))]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations"
        )
        import timm
    return timm
