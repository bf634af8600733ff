"""Job spec models and rules: shapes, aliases, every validation rule, Quartz cron, wire forms."""

from __future__ import annotations

import copy
import itertools
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.models.cron import min_interval_seconds, parse_quartz
from airflow_provider_aidp.models.jobs import JobSpec, canonical, load_spec, spec_from_server
from airflow_provider_aidp.models.spec_rules import NAME_RE, find_cycle

CLUSTER = {"clusterKey": "ck", "clusterName": "etl_cluster"}


def good() -> dict[str, Any]:
    return {
        "name": "etl_daily.job",
        "path": "/Workspace/Shared",
        "jobClusters": [dict(CLUSTER)],
        "schedule": {"quartzCronExpression": "0 0 2 * * ?", "timezoneId": "Europe/Paris"},
        "parameters": {"env": "prod"},
        "tasks": [
            {
                "type": "NOTEBOOK_TASK",
                "taskKey": "extract",
                "cluster": dict(CLUSTER),
                "notebookPath": "/Workspace/e.ipynb",
            },
            {
                "type": "PYTHON_TASK",
                "taskKey": "transform",
                "dependsOn": ["extract"],
                "cluster": dict(CLUSTER),
                "filePath": "/Workspace/t.py",
            },
            {
                "type": "NOTEBOOK_TASK",
                "taskKey": "load",
                "dependsOn": [{"taskKey": "transform"}],
                "cluster": dict(CLUSTER),
                "notebookPath": "/Workspace/l.ipynb",
            },
        ],
    }


def problems_of(spec: dict[str, Any]) -> str:
    with pytest.raises(AIDPConfigError) as err:
        load_spec(spec)
    return str(err.value)


def test_valid_spec_loads_and_serialises_objects_and_keys() -> None:
    spec = load_spec(good())
    wire = spec.to_wire("objects")
    assert wire["tasks"][1]["dependsOn"] == [{"taskKey": "extract"}]
    assert [t["runIf"] for t in wire["tasks"]] == ["ALL_SUCCESS"] * 3
    assert wire["tasks"][0]["dependsOn"] == []
    assert wire["parameters"] == [{"name": "env", "value": "prod"}]
    assert spec.to_wire("keys")["tasks"][2]["dependsOn"] == ["transform"]
    assert spec.head() == {"name": "etl_daily.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 1}


def test_snake_case_and_camel_case_give_the_same_spec() -> None:
    snake = {
        "name": "a.b",
        "path": "/Workspace/x",
        "max_concurrent_runs": 3,
        "job_clusters": [{"cluster_key": "ck", "cluster_name": "etl_cluster"}],
        "tasks": [
            {
                "type": "NOTEBOOK_TASK",
                "task_key": "t",
                "run_if": "ALL_DONE",
                "notebook_path": "/Workspace/n",
                "cluster": {"cluster_key": "ck"},
                "parameters": [{"name": "n", "value": 5}],
            }
        ],
    }
    camel = {
        "name": "a.b",
        "path": "/Workspace/x",
        "maxConcurrentRuns": 3,
        "jobClusters": [{"clusterKey": "ck", "clusterName": "etl_cluster"}],
        "tasks": [
            {
                "type": "NOTEBOOK_TASK",
                "taskKey": "t",
                "runIf": "ALL_DONE",
                "notebookPath": "/Workspace/n",
                "cluster": {"clusterKey": "ck"},
                "parameters": {"n": "5"},
            }
        ],
    }
    assert load_spec(snake).to_wire() == load_spec(camel).to_wire()


def test_a_jobspec_instance_is_accepted_and_revalidated() -> None:
    spec = JobSpec.model_validate(good())
    assert load_spec(spec) is spec
    bad = spec.model_copy(update={"name": "9lives"})
    with pytest.raises(AIDPConfigError, match="name: '9lives'"):
        load_spec(bad)


def test_every_problem_is_listed_at_once() -> None:
    spec = good()
    spec["name"] = "bad name"
    spec["path"] = "/tmp"
    spec["tasks"][2]["dependsOn"] = ["extrct"]
    text = problems_of(spec)
    assert "3 problems" in text
    assert "name: 'bad name' is not a valid AIDP name" in text
    assert "path: '/tmp' must be under /Workspace/" in text
    assert (
        "tasks[load].depends_on: unknown task key 'extrct' (did you mean 'extract'?); "
        "declared tasks: extract, transform, load"
    ) in text


def _mutate(path: str, value: Any) -> dict[str, Any]:
    spec = good()
    node: Any = spec
    parts = path.split("/")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return spec


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("name", "_x", "name: '_x' is not a valid AIDP name"),
        ("name", "etl-daily", "starting with a letter"),
        ("path", _DELETE, "path: required"),
        ("path", "/Workspaces/x", "must be under /Workspace/"),
        ("maxConcurrentRuns", 0, "max_concurrent_runs: 0 must be at least 1"),
        ("timeoutSeconds", -5, "timeout_seconds: -5"),
        ("tasks/1/taskKey", "extract", "tasks[extract].task_key: 'extract' is used by 2 tasks"),
        ("tasks/0/dependsOn", ["extract"], "tasks[extract].depends_on: a task cannot depend on itself"),
        ("tasks/0/dependsOn", ["load"], "depends_on has a cycle: extract -> load -> transform -> extract"),
        ("tasks/0/runIf", "SOMETIMES", "tasks[extract].run_if: 'SOMETIMES' is not one of ALL_SUCCESS"),
        ("tasks/0/cluster", _DELETE, "tasks[extract].cluster: required for NOTEBOOK_TASK"),
        (
            "tasks/1/cluster",
            {"clusterKey": "kc"},
            "tasks[transform].cluster.cluster_key: 'kc' is not a declared",
        ),
        (
            "tasks/1/cluster",
            {"clusterKey": "ck", "clusterName": "0b3a4c1e-1111-2222-3333-444455556666"},
            "WORKFLOW_EXECUTION_0049",
        ),
        ("tasks/1/cluster", {"clusterKey": "ck", "clusterName": "other"}, "differs from job cluster 'ck'"),
        (
            "jobClusters/0/clusterName",
            "0B3A4C1E-1111-2222-3333-444455556666",
            "job_clusters[ck].cluster_name",
        ),
        ("jobClusters/0/clusterKey", _DELETE, "job_clusters[0].cluster_key: required"),
        ("tasks/0/notebookPath", _DELETE, "tasks[extract].notebook_path: required for NOTEBOOK_TASK"),
        ("tasks/1/filePath", "", "tasks[transform].file_path: required for PYTHON_TASK"),
        ("tasks/1/maxRetries", -1, "tasks[transform].max_retries: -1 must not be negative"),
        ("tasks/1/minRetryIntervalMillis", -1, "min_retry_interval_millis: -1"),
        ("tasks/1/timeoutSeconds", -1, "tasks[transform].timeout_seconds: -1"),
        ("tasks/1/source", "S3", "tasks[transform].source: 'S3' is not one of WORKSPACE, GIT_PROVIDER"),
        ("tasks/1/source", "GIT_PROVIDER", "source GIT_PROVIDER needs a git_config"),
        ("schedule/quartzCronExpression", "0 2 * * *", "6 or 7 fields"),
        ("schedule/quartzCronExpression", "0 0 2 * * *", "exactly one of day-of-month"),
        ("schedule/quartzCronExpression", "0 0 25 * * ?", "hours field: 25 is outside 0-23"),
        ("schedule/quartzCronExpression", "0 0/10 * * * ?", "10 minutes apart"),
        ("schedule/quartzCronExpression", "* 0 2 * * ?", "1 seconds apart"),
        ("schedule/quartzCronExpression", "0 0 0 30 2 ?", "fires fewer than twice"),
        (
            "schedule/timezoneId",
            "Mars/Olympus",
            "schedule.timezone_id: 'Mars/Olympus' is not an IANA time zone",
        ),
        ("schedule/pauseStatus", "STOPPED", "schedule.pause_status"),
        ("continuous", {"pauseStatus": "UNPAUSED"}, "set one of them, not both"),
        ("tasks/0/type", "SPARK_TASK", "tasks[extract]: Input tag 'SPARK_TASK'"),
        ("tasks/0/notebokPath", "x", "unknown field(s) 'notebokPath'"),
        ("tasks/0/maxRetries", "many", "tasks[extract].max_retries: Input should be a valid integer"),
        ("parameters", [{"name": "a"}, {"name": "a"}], "parameter 'a' is declared more than once"),
        ("gitConfig", {"provider": "SVN"}, "git_config.provider: 'SVN'"),
    ],
)
def test_each_rule_rejects_with_the_field_named(path: str, value: Any, expected: str) -> None:
    assert expected in problems_of(_mutate(path, value))


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"type": "JAR_TASK", "cluster": CLUSTER}, "tasks[x].main_class: required for JAR_TASK"),
        ({"type": "IF_ELSE_TASK"}, "tasks[x].condition: required for IF_ELSE_TASK"),
        ({"type": "JOB_TASK"}, "tasks[x].job_key: required for JOB_TASK"),
        ({"type": "AGENT_TASK", "agentKey": "a"}, "tasks[x].prompt: required for AGENT_TASK"),
    ],
)
def test_required_fields_per_task_type(task: dict[str, Any], expected: str) -> None:
    spec = good()
    spec["tasks"].append({"taskKey": "x", **task})
    assert expected in problems_of(spec)


def test_non_mapping_spec_is_rejected() -> None:
    with pytest.raises(AIDPConfigError, match="must be a dict, a JobSpec"):
        load_spec(["not", "a", "spec"])  # type: ignore[arg-type]


def test_find_cycle_is_none_for_a_dag() -> None:
    assert find_cycle({"c": ["b", "a"], "b": ["a"]}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


# --- Quartz ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "gap_minutes"),
    [
        ("0 0/30 * * * ?", 30),
        ("0 15,45 * * * ?", 30),
        ("0 0 2 * * ?", 1440),
        ("0 0 2 ? * MON-FRI", 1440),
        ("0 0 9 ? * MON", 7 * 1440),
        ("0 0 0 L * ?", 28 * 1440),  # Jan 31 -> Feb 28 (2026, not a leap year)
        ("0 0 0 ? * 6#3", 28 * 1440),
        ("0 0 0 ? * 2L", 28 * 1440),
        ("0 0 0 15W * ?", None),
        ("0 0 12 1 JAN-DEC/3 ? 2027-2030", None),
        ("0 0 22-2 * * ?", 60),
        ("0 0 0 LW * ?", None),
    ],
)
def test_quartz_min_interval(expression: str, gap_minutes: int | None) -> None:
    gap = min_interval_seconds(parse_quartz(expression))
    assert gap is not None
    if gap_minutes is not None:
        assert gap == gap_minutes * 60


def test_quartz_w_and_hash_pick_the_right_days() -> None:
    import datetime as dt

    w = parse_quartz("0 0 0 1W * ?")  # 2026-08-01 is a Saturday -> Monday 3rd
    assert w.fires_on(dt.date(2026, 8, 3)) and not w.fires_on(dt.date(2026, 8, 1))
    third_friday = parse_quartz("0 0 0 ? * FRI#3")
    assert third_friday.fires_on(dt.date(2026, 11, 20)) and not third_friday.fires_on(dt.date(2026, 11, 13))
    last_day_minus_2 = parse_quartz("0 0 0 L-2 * ?")
    assert last_day_minus_2.fires_on(dt.date(2026, 2, 26))


@pytest.mark.parametrize(
    "expression",
    ["0 0 2 * * ? 1969", "0 0 2 ? * 8", "0 0 2 ? * FOO", "0 0/0 * * * ?", "0 0 ? * * ?", "0 0 2 * 13 ?"],
)
def test_quartz_rejects(expression: str) -> None:
    with pytest.raises(ValueError):
        parse_quartz(expression)


# --- canonical form -------------------------------------------------------------------


def test_canonical_ignores_server_fields_order_and_dependson_form() -> None:
    spec = load_spec(good())
    server = copy.deepcopy(spec.to_wire("keys"))
    server.update({"key": "k1", "createdBy": "me", "timeCreated": "2026-01-01T00:00:00Z"})
    server["tasks"].reverse()
    server["tasks"][0]["taskRunCount"] = 3
    assert canonical(spec_from_server(server)) == canonical(spec)


def test_canonical_treats_null_and_missing_lists_alike() -> None:
    spec = load_spec(good())
    server = spec.to_wire()
    server["tasks"][0]["dependsOn"] = None
    server["tasks"][0]["parameters"] = []
    assert canonical(spec_from_server(server)) == canonical(spec)


def test_canonical_sees_a_removed_field() -> None:
    spec = load_spec({**good(), "description": "old"})
    server = {**spec.to_wire(), "key": "k1"}
    assert canonical(spec_from_server(server)) != canonical(load_spec(good()))


# --- property tests -------------------------------------------------------------------

_keys = st.text(string.ascii_lowercase, min_size=1, max_size=8)


@st.composite
def dag_specs(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(_keys, min_size=1, max_size=8, unique=True))
    tasks = []
    for i, key in enumerate(keys):
        deps = draw(st.lists(st.sampled_from(keys[:i]), unique=True)) if i else []
        as_objects = draw(st.booleans())
        tasks.append(
            {
                "type": draw(st.sampled_from(["NOTEBOOK_TASK", "PYTHON_TASK"])),
                "taskKey": key,
                "dependsOn": [{"taskKey": d} for d in deps] if as_objects else deps,
                "runIf": draw(st.sampled_from(["ALL_SUCCESS", "ALL_DONE", "NONE_FAILED"])),
                "cluster": dict(CLUSTER),
                "notebookPath": "/Workspace/n.ipynb",
                "filePath": "/Workspace/f.py",
            }
        )
    for task in tasks:
        task.pop("filePath" if task["type"] == "NOTEBOOK_TASK" else "notebookPath")
    params = draw(st.dictionaries(_keys, st.text(max_size=5), max_size=3))
    return {
        "name": "p.job",
        "path": "/Workspace/P",
        "jobClusters": [dict(CLUSTER)],
        "tasks": tasks,
        "parameters": params,
    }


@settings(max_examples=60, deadline=None)
@given(dag_specs())
def test_valid_specs_round_trip_through_the_wire_form(raw: dict[str, Any]) -> None:
    spec = load_spec(raw)
    for fmt in ("objects", "keys"):
        again = load_spec(spec.to_wire(fmt))  # type: ignore[arg-type]
        assert canonical(again) == canonical(spec)
        assert spec_from_server({**again.to_wire(fmt), "key": "k"}).to_wire() == spec.to_wire()  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(dag_specs(), st.data())
def test_adding_a_back_edge_always_reports_a_cycle(raw: dict[str, Any], data: st.DataObject) -> None:
    tasks = raw["tasks"]
    if len(tasks) < 2:
        return
    i = data.draw(st.integers(0, len(tasks) - 2))
    # The last task depends (transitively or not) on nothing after it; make task i depend on the last.
    tasks[-1]["dependsOn"] = [tasks[i]["taskKey"]]
    tasks[i]["dependsOn"] = [tasks[-1]["taskKey"]]
    assert "depends_on has a cycle" in problems_of(raw)


@settings(max_examples=200, deadline=None)
@given(st.text(string.ascii_letters + string.digits + "_.-/ é", max_size=12))
def test_names_are_accepted_exactly_when_they_match_the_charset(name: str) -> None:
    raw = {**good(), "name": name}
    valid = (
        bool(name)
        and name[0].isascii()
        and name[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "_.") for c in name)
    )
    assert bool(NAME_RE.match(name)) == valid
    if valid:
        assert load_spec(raw).name == name
    else:
        assert "is not a valid AIDP name" in problems_of(raw)


@st.composite
def simple_quartz(draw: st.DrawFn) -> tuple[str, set[int], set[int], set[int], set[int] | None]:
    minutes = draw(st.sets(st.integers(0, 59), min_size=1, max_size=4))
    hours = draw(st.sets(st.integers(0, 23), min_size=1, max_size=3))
    use_dow = draw(st.booleans())
    days = draw(st.sets(st.integers(1, 7) if use_dow else st.integers(1, 31), min_size=1, max_size=3))
    day_text = ",".join(map(str, sorted(days)))
    fields = f"0 {','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))}"
    expression = f"{fields} ? * {day_text}" if use_dow else f"{fields} {day_text} * ?"
    return expression, minutes, hours, days, (days if use_dow else None)


@settings(max_examples=40, deadline=None)
@given(simple_quartz())
def test_min_interval_matches_brute_force_enumeration(case: Any) -> None:
    import datetime as dt

    expression, minutes, hours, days, dows = case
    fires = []
    day = dt.datetime(2026, 1, 1)
    while day.year == 2026:
        quartz_dow = day.isoweekday() % 7 + 1
        if (dows is not None and quartz_dow in dows) or (dows is None and day.day in days):
            fires += [day + dt.timedelta(hours=h, minutes=m) for h in hours for m in minutes]
        day += dt.timedelta(days=1)
    fires.sort()
    expected = min((b - a).total_seconds() for a, b in itertools.pairwise(fires)) if len(fires) > 1 else None
    assert min_interval_seconds(parse_quartz(expression), years=1) == expected


def test_wire_body_sends_what_the_field_notes_send_and_the_author_can_override() -> None:
    spec = good()
    spec["tasks"][0]["cluster"] = {"clusterKey": "ck"}  # name filled from jobClusters
    spec["tasks"][2]["source"] = "GIT_PROVIDER"
    spec["tasks"][2]["gitConfig"] = {"provider": "GITHUB", "repositoryUrl": "https://x/y", "branch": "main"}
    tasks = {t["taskKey"]: t for t in load_spec(spec).to_wire()["tasks"]}
    assert tasks["extract"]["cluster"] == CLUSTER and tasks["extract"]["source"] == "WORKSPACE"
    assert tasks["transform"]["source"] == "WORKSPACE" and tasks["extract"]["dependsOn"] == []
    assert all(t["runIf"] == "ALL_SUCCESS" for t in tasks.values())
    assert tasks["load"]["source"] == "GIT_PROVIDER"
    job_git = {
        **good(),
        "gitConfig": {"provider": "GITHUB", "repositoryUrl": "https://x/y", "branch": "main"},
    }
    assert all("source" not in t for t in load_spec(job_git).to_wire()["tasks"])  # git: not guessed


def test_service_defaults_and_a_trailing_slash_are_not_a_change() -> None:
    spec = load_spec(good())
    served = spec.to_wire()
    served.update(description="", timeoutSeconds=0, path="/Workspace/Shared/", createdBy="ocid1.user")
    for task in served["tasks"]:
        task.update(maxRetries=0, minRetryIntervalMillis=0, isRetryOnTimeout=False, timeoutSeconds=0)
        task.update(isStreaming=False, cluster={**task["cluster"], "clusterId": "cid"})
    assert canonical(spec_from_server(served)) == canonical(spec)
    served["tasks"][0]["maxRetries"] = 2
    assert canonical(spec_from_server(served)) != canonical(spec)
