"""What a wait for a run is, apart from how the service is asked: shared by the run operators, the
sensor and the triggers, with no Airflow task context and no transport. ``identity`` (retry tokens
from a task instance), ``wait`` (when to look again, which errors to outlast, the one event a wait
ends with, and the sync loop), ``report`` (the summary or the one failure message) and
``watermark`` (which finished runs an event trigger has not reported).
"""
