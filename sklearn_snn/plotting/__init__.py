"""Visualisations of spiking networks as scikit-learn style Display objects.

Every display follows the pattern of :mod:`sklearn.metrics` displays: a constructor that takes
the data to draw, a ``plot(ax=None, ...)`` method that draws it and stores the matplotlib
artists as attributes ending in ``_`` (``ax_``, ``figure_`` and display-specific ones such as
``scatters_`` or ``lines_``), and one or more class methods ``from_estimator(...)`` that compute
the data from a fitted estimator and plot it.

matplotlib is an optional dependency (extra ``plot``); it is imported only when something is
drawn.

==========================  ==================================================================
display                     draws
==========================  ==================================================================
:class:`SpikeRasterDisplay`     spike raster of one sample, one panel per layer
:class:`MembraneTraceDisplay`   membrane potential of chosen neurons over time
:class:`FiringRateDisplay`      histogram of per-neuron firing rates, per layer
:class:`StepsCurveDisplay`      accuracy against simulation steps (ANN-to-SNN conversion)
:class:`ReceptiveFieldDisplay`  learned input weights of each neuron as images (STDP)
:class:`FitnessCurveDisplay`    fitness per generation (evolution)
:class:`LossCurveDisplay`       training loss and validation score per epoch
:class:`SurrogateDisplay`       surrogate derivatives (and the spike step they replace)
==========================  ==================================================================
"""

from .activity import FiringRateDisplay, MembraneTraceDisplay, SpikeRasterDisplay
from .curves import (
    FitnessCurveDisplay,
    LossCurveDisplay,
    ReceptiveFieldDisplay,
    StepsCurveDisplay,
    SurrogateDisplay,
)

__all__ = [
    "SpikeRasterDisplay",
    "MembraneTraceDisplay",
    "FiringRateDisplay",
    "StepsCurveDisplay",
    "ReceptiveFieldDisplay",
    "FitnessCurveDisplay",
    "LossCurveDisplay",
    "SurrogateDisplay",
]
