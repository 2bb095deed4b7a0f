"""Test session settings: a non-interactive matplotlib backend and quick example sizes."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SKLEARN_SNN_QUICK", "1")
