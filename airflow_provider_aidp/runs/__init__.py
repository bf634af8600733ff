"""Run-level logic shared by the run operator, the sensor and the trigger.

Kept free of Airflow task context and of the hook's transport so it can be unit-tested on plain
models: ``identity`` (retry tokens), ``polling`` (when to poll, which errors are transient, the
sync wait loop), ``outcome`` (the event every wait produces) and ``report`` (summaries and
failure diagnostics).
"""
