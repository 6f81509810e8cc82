"""The client: links it builds when dbt Cloud gives none."""

from __future__ import annotations

from typing import Any

from dbtgate.cloud.models import Run


def run(status: int, **more: Any) -> Run:
    return Run.from_api({"id": 1, "status": status, "job_definition_id": 2, **more})


def test_a_blank_href_is_rebuilt_from_the_project() -> None:
    from dbtgate.clock import VirtualClock
    from dbtgate.cloud.client import DbtCloudClient
    client = DbtCloudClient("https://ab123.us1.dbt.com", "t", 7, clock=VirtualClock())
    linked = client._run({"id": 5, "status": 10, "project_id": 3, "href": ""})
    assert linked.href == "https://ab123.us1.dbt.com/deploy/7/projects/3/runs/5/"
    assert client._run({"id": 5, "status": 10, "project_id": 3, "href": "https://x/y"}).href == "https://x/y"
