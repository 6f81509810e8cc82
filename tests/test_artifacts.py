"""Reading run_results.json and manifest.json incrementally: the same answers as json.load, in bounded memory,
whatever the chunk boundaries cut (multi-byte characters, numbers, escapes)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtgate.artifacts import JsonStream, _read_issues, _with_files, manifest_nodes, node_issues, stream_results
from tests.conftest import REFERENCE

DBT_CORE_RUN = REFERENCE / "dbt-core-run"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


def walk_results(data: bytes, chunk: int) -> list[Any]:
    stream = JsonStream(io.BytesIO(data), chunk=chunk)
    found: list[Any] = []
    for key in stream.members():
        if key == "results":
            for _ in stream.elements():
                found.append(stream.value())
        else:
            stream.skip()
    return found


@settings(max_examples=200, deadline=None)
@given(json_values, st.lists(json_values, max_size=8), json_values, st.integers(1, 64), st.booleans())
def test_results_stream_equals_json_load(before: Any, results: list[Any], after: Any, chunk: int,
                                         pretty: bool) -> None:
    document = {"metadata": before, "results": results, "args": after}
    data = json.dumps(document, indent=2 if pretty else None, ensure_ascii=False).encode()
    assert walk_results(data, chunk) == json.loads(data)["results"]


def test_a_value_over_the_limit_is_refused_not_loaded() -> None:
    data = json.dumps({"results": ["x" * 5000]}).encode()
    stream = JsonStream(io.BytesIO(data), chunk=100, limit=1000)
    with pytest.raises(ValueError, match="larger than"):
        for _ in stream.members():
            for _ in stream.elements():
                stream.value()


def test_broken_json_is_an_error() -> None:
    with pytest.raises(ValueError):
        walk_results(b'{"results": [1, 2', 4)


def test_manifest_nodes_finds_only_the_node_objects(tmp_path: Path) -> None:
    decoy = 'select 1 -- "model.p.a": {"unique_id": "model.p.a", "original_file_path": "wrong.sql"}'
    manifest = {
        "metadata": {"dbt_schema_version": "v12"},
        "nodes": {f"model.p.{name}": {"unique_id": f"model.p.{name}", "name": name,
                                      "original_file_path": f"models/{name}.sql", "raw_code": decoy}
                  for name in ("z", "b", "a", "c")},
        "parent_map": {"model.p.a": ["model.p.b"]},
        "child_map": {"model.p.b": ["model.p.a"]},
        "disabled": {"model.p.d": [{"unique_id": "model.p.d"}]},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    for chunk in (7, 64, 1 << 20):
        found = manifest_nodes(path, {"model.p.a", "model.p.d", "model.p.missing"}, chunk=chunk)
        assert found == {"model.p.a": manifest["nodes"]["model.p.a"]}, chunk


def test_the_reference_run_reads_the_same_as_json_load() -> None:
    results, manifest = DBT_CORE_RUN / "run_results-error.json", DBT_CORE_RUN / "manifest.json"
    expected = node_issues(json.loads(results.read_text()), json.loads(manifest.read_text()))
    problems: list[str] = []
    failed, warned = _read_issues(results, problems)
    assert (failed, warned) != expected, "without the manifest there are no file paths yet"
    assert _with_files(failed, warned, manifest, problems) == expected and problems == []
    assert len(list(stream_results(results))) == len(json.loads(results.read_text())["results"])


def test_the_step_that_ran_the_nodes_is_found_whatever_its_flags() -> None:
    from dbtgate.artifacts import result_steps, step_command
    from dbtgate.cloud.models import RunStep

    assert step_command("Invoke dbt with `dbt --warn-error build --select x`") == "build"
    assert step_command("Invoke dbt with `dbt --log-format json run-operation grant`") == "run-operation"
    assert step_command("Clone git repository") == ""

    def step(index: int, command: str, status: int) -> RunStep:
        return RunStep.from_api({"index": index, "name": f"Invoke dbt with `{command}`", "status": status})

    seeded = [step(3, "dbt seed", 10), step(4, "dbt --warn-error build", 20), step(5, "dbt docs generate", 10)]
    assert result_steps(seeded).saved == 4 and 4 in result_steps(seeded).read
    fresh = [step(3, "dbt source freshness", 20), step(4, "dbt build", 10), step(5, "dbt docs generate", 10)]
    assert result_steps(fresh, run_failed=False).saved == 4, "a green run's failed freshness step does not decide"
    assert result_steps(fresh, run_failed=False).read == (4,)


def test_a_node_id_quoted_inside_a_string_is_not_taken_for_a_key(tmp_path: Path) -> None:
    """Both manifest readers walk the same keys: an id quoted in a description names no node."""
    from dbtgate.artifacts import manifest_nodes, manifest_unique_ids

    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"nodes": {"model.p.stg": {"unique_id": "model.p.stg", "name": "stg", '
                        '"description": "built like \\"model.other.orders\\": {\\"x\\": 1}"}, '
                        '"model.p.orders": {"unique_id": "model.p.orders", "name": "orders"}}}')
    assert manifest_unique_ids(manifest, {("model", "orders")}, chunk=16) == {("model", "orders"): "model.p.orders"}
    assert set(manifest_nodes(manifest, {"model.p.orders", "model.p.stg"}, chunk=16)) == {"model.p.orders",
                                                                                        "model.p.stg"}
