"""Apache Airflow provider for Oracle AI Data Platform (AIDP) Workflow Jobs."""

__version__ = "0.1.0"
