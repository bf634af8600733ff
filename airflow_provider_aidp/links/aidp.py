"""Operator extra link: open the AIDP job run in the console.

The URL is computed once by the operator (from the connection's ``console_url_template``) and
pushed to XCom as ``run_url``; the link only reads it back, so the webserver never needs the
connection or any credentials.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

RUN_URL_XCOM_KEY = "run_url"


class AIDPJobRunLink(BaseOperatorLink):
    """ "AIDP Job Run": the console page of the run this task started or watched."""

    name = "AIDP Job Run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        url = XCom.get_value(key=RUN_URL_XCOM_KEY, ti_key=ti_key)
        return str(url) if url else ""
