"""Benchmark SNN estimators against classical models on your own data.

:func:`compare` cross-validates every model that fits the data's shape (optionally tuning each one
with a nested Optuna search) and returns one row per model as a :class:`pandas.DataFrame`;
:func:`write_report` turns it into a Markdown and a self-contained HTML report with plots. The
``sklearn-snn benchmark --data PATH`` command is a thin layer over both, with :func:`load_data`
reading the file.

The package is split by job: ``data`` (reading and checking the data), ``models`` (which models fit
which shape, with the classical models' search spaces), ``compare`` (the cross-validation) and
``report`` (tables, plots, pages). pandas is needed (``pip install pandas``); Parquet files also need
pyarrow, HDF5 spike files h5py, the plots matplotlib.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from sklearn_snn.benchmark import compare
>>> X, y = load_iris(return_X_y=True)
>>> df = compare(X, y, models="LogisticRegression,RandomForest", cv=3, quick=True)
>>> df[["model", "snn"]].values.tolist()
[['LogisticRegression', False], ['RandomForest', False]]
"""

from .compare import COLUMNS, DeadlineCallback, compare
from .data import DataInfo, bin_events, check_data, load_data
from .models import ModelSpec, available_models, count_spikes, flatten_time, quick_mode, select_models
from .report import REPORT_FILES, markdown_table, summary_line, write_report

__all__ = [
    "COLUMNS",
    "REPORT_FILES",
    "DataInfo",
    "DeadlineCallback",
    "ModelSpec",
    "available_models",
    "bin_events",
    "check_data",
    "compare",
    "count_spikes",
    "flatten_time",
    "load_data",
    "markdown_table",
    "quick_mode",
    "select_models",
    "summary_line",
    "write_report",
]
