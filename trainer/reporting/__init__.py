"""Reporting and run control beside a training run (DESIGN.md §3, §4).

The data path, in order:

- ``callback.py``: the TrainerCallback; metric points, health alerts, clean stops.
- ``throughput.py``: true samples/s and tokens/s counted from the batches trained on.
- ``gpu_stats.py``: memory and utilisation of the GPUs in use.
- ``reporter.py``: the contract's environment; every event to the log, then to the sender.
- ``event_log.py``: ``events.jsonl``, numbered lines, the record of the run.
- ``sender.py`` / ``http_target.py``: background delivery, batching, backoff, resend.
- ``control.py``: SIGINT/SIGTERM and the max_runtime clock.
- ``failures.py``: an exception that ended the run as gpu_oom / job_failed fields.
- ``session.py``: ``reporting_session(...)``, the one entry point (used by trainer/run.py).
"""
