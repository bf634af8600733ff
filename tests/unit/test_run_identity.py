"""Deterministic opc-retry-token derivation."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_aidp.runs.identity import MAX_TOKEN_LENGTH, TOKEN_PATTERN, TaskIdentity

text = st.text(min_size=1, max_size=300)


@given(text, text, text, st.integers(-1, 10_000), st.integers(0, 50), st.none() | text)
def test_token_is_short_safe_and_deterministic(
    dag: str, run: str, task: str, index: int, gen: int, previous: str | None
) -> None:
    identity = TaskIdentity(dag, run, task, index, gen)
    token = identity.retry_token("run", previous)
    assert len(token) <= MAX_TOKEN_LENGTH and TOKEN_PATTERN.match(token)
    assert token == TaskIdentity(dag, run, task, index, gen).retry_token("run", previous)


def test_every_part_of_the_identity_changes_the_token() -> None:
    base = TaskIdentity("d", "r", "t", -1, 0)
    variants = [
        TaskIdentity("d2", "r", "t", -1, 0),
        TaskIdentity("d", "r2", "t", -1, 0),
        TaskIdentity("d", "r", "t2", -1, 0),
        TaskIdentity("d", "r", "t", 0, 0),
        TaskIdentity("d", "r", "t", -1, 1),
    ]
    tokens = {base.retry_token()} | {v.retry_token() for v in variants}
    tokens |= {base.retry_token("run", "previous-run"), base.retry_token("repair", "previous-run")}
    assert len(tokens) == 8


def test_from_context_uses_the_clear_generation_not_the_try_number() -> None:
    task = SimpleNamespace(retries=3)
    first = SimpleNamespace(
        dag_id="d", run_id="r", task_id="t", map_index=-1, max_tries=3, try_number=1, task=task
    )
    retry = SimpleNamespace(**{**vars(first), "try_number": 3})
    cleared = SimpleNamespace(**{**vars(first), "try_number": 5, "max_tries": 7})
    ids = [TaskIdentity.from_context({"ti": ti}) for ti in (first, retry, cleared)]
    assert ids[0] == ids[1] and ids[0].generation == 0
    assert ids[2].generation == 4 and ids[2].retry_token() != ids[0].retry_token()
