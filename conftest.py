"""Test session settings: a non-interactive matplotlib backend and quick example sizes.

Without a CUDA device, Triton's kernels run in its interpreter on CPU tensors (for
tests/test_triton_backend.py): ``TRITON_INTERPRET`` is read when triton is imported, so it is set
here, before any test module can import it. Without triton (an optional dependency), the module
of kernels is left out of the doctest collection (importing it imports triton).
"""
import importlib.util
import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SKLEARN_SNN_QUICK", "1")


def _no_cuda():
    try:
        import torch
    except ImportError:
        return True
    return not torch.cuda.is_available()


if _no_cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")

collect_ignore = []
if importlib.util.find_spec("triton") is None:
    collect_ignore.append("sklearn_snn/_core/triton_kernels.py")
