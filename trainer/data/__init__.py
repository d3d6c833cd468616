"""Datasets: read (readers), judge every row (formats), shape for TRL and split (prepare), and
report on a file without training (inspect). Light: nothing here imports torch or `datasets`
at import time, so the desktop can inspect a dataset."""

from trainer.data.formats import (
    ACCEPTED_FORMATS,
    FORMATS,
    DatasetError,
    check_method,
    detect_format,
)
from trainer.data.inspect import DatasetReport, inspect_dataset
from trainer.data.prepare import (
    RunData,
    load_reward_data,
    load_run_data,
    prepare_rows,
    split_rows,
)
from trainer.data.readers import Row, read_rows

__all__ = [
    "ACCEPTED_FORMATS",
    "FORMATS",
    "DatasetError",
    "DatasetReport",
    "Row",
    "RunData",
    "check_method",
    "detect_format",
    "inspect_dataset",
    "load_reward_data",
    "load_run_data",
    "prepare_rows",
    "read_rows",
    "split_rows",
]
