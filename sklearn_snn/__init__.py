"""sklearn-snn: spiking neural networks as scikit-learn estimators on one shared PyTorch core."""

from ._version import __version__  # noqa: F401
from .conversion import ConvertedSNN  # noqa: E402
from .eventprop import EventPropClassifier  # noqa: E402
from .evolution import EvolvedSNN  # noqa: E402
from .meta import MetaSNNClassifier, SNNArchitectureSearch  # noqa: E402
from .persistence import load, save  # noqa: E402
from .stdp import STDPTransformer  # noqa: E402
from .surrogate import SurrogateSNNClassifier, SurrogateSNNRegressor  # noqa: E402
from ._core.numba_backend import warm_up  # noqa: E402

__all__ = ["ConvertedSNN", "EventPropClassifier", "EvolvedSNN", "MetaSNNClassifier", "SNNArchitectureSearch", "STDPTransformer", "SurrogateSNNClassifier",
           "SurrogateSNNRegressor", "load", "save", "warm_up", "__version__"]

# load the compiled kernels the last processes used in a daemon thread while the program goes on
# (sklearn_snn.warmup; SKLEARN_SNN_WARMUP=0 turns it off)
from .warmup import start as _start_warm_up  # noqa: E402

_start_warm_up()
