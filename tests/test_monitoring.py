"""deploy/monitoring: the Grafana dashboard and the PrometheusRule read only metrics the actors serve (scraped from
every role of a real cluster), the rule is well-formed, and, where promtool is installed, valid and firing."""

from __future__ import annotations

import asyncio
import copy
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ClusterFactory
from .k8s_sim import DEPLOY, find, render, tool
from .monitoring import (
    DASHBOARD,
    PROMETHEUS_RULE_SCHEMA,
    alerts,
    bytes_of,
    dashboard_queries,
    load_dashboard,
    load_rules,
    metric_names,
    panels,
    rules_file,
)

yaml = pytest.importorskip("yaml", reason="PyYAML is missing: run scripts/k8s-test-deps.sh")
Obj = dict[str, Any]
# The four: job failures, stalled leases, staging full, reducer memory.
ALERTS = {"MapReduceJobsFailing", "MapReduceSplitLeasesExpiring", "MapReduceReducerStagingFull",
          "MapReduceReducerMemoryHigh"}


@pytest.fixture(scope="module")
def jsonschema() -> Any:
    return pytest.importorskip("jsonschema", reason="jsonschema (a kubernetes-validate dependency) is missing")


def unknown(queries: dict[str, set[str]], served: set[str]) -> dict[str, set[str]]:
    return {query: names - served for query, names in queries.items() if names - served}


async def test_every_query_names_only_metrics_the_actors_serve(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    job = await cluster.submit({"input": {"text": "a b a\nc\n"}})
    assert await cluster.result(job["id"]) == {"a": 2, "b": 1, "c": 1}  # every labelled series has appeared
    served: set[str] = set()
    for actor in [cluster.master, *cluster.mappers, *cluster.reducers]:
        async with cluster.session.get(actor.url + "/metrics") as response:
            for family in text_string_to_metric_families(await response.text()):
                served.update(sample.name for sample in family.samples)
    dashboard = dashboard_queries(load_dashboard())
    rules = {r["expr"]: metric_names(r["expr"]) for r in alerts(load_rules()).values()}
    assert all(dashboard.values()) and all(rules.values()), "every query selects some metric"
    assert unknown(dashboard, served) == {}
    assert unknown(rules, served) == {}
    # Not vacuous: the names the check compares are the ones the queries use, and a misspelt one is caught.
    used = set().union(*dashboard.values(), *rules.values())
    assert {"mapreduce_split_attempt_duration_seconds_bucket", "mapreduce_shuffle_send_duration_seconds_bucket",
            "mapreduce_reducer_stream_duration_seconds_bucket", "mapreduce_http_request_duration_seconds_bucket",
            "process_resident_memory_bytes", "mapreduce_build_info"} <= used
    assert unknown({"q": metric_names("rate(mapreduce_job_total[5m])")}, served) == {"q": {"mapreduce_job_total"}}


def test_metric_names_are_read_out_of_promql() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(mapreduce_http_request_duration_seconds_bucket'
            '{namespace="$namespace", route=~"/v1.*"}[$__rate_interval]))) > 1e3 and on (pod) '
            'group_left process_cpu_seconds_total offset 5m')
    assert metric_names(expr) == {"mapreduce_http_request_duration_seconds_bucket", "process_cpu_seconds_total"}
    assert metric_names("max by (pod) (a / b) > 0.9 * 2147483648") == {"a", "b"}


def test_the_dashboard_is_grafana_json_with_a_query_per_panel() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert 'namespace="$namespace"' in target["expr"], (panel["title"], target["expr"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
    titles = " ".join(p["title"] for p in panels(dashboard)).lower()
    for topic in ("split", "stream", "staging", "memory", "latency"):
        assert topic in titles


def test_the_rule_has_the_four_alerts_and_its_schema_holds(jsonschema: Any) -> None:
    rule = load_rules()
    jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)
    found = alerts(rule)
    assert set(found) == ALERTS
    for name, alert in found.items():
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
    changes: tuple[Callable[[Obj], object], ...] = (
        lambda r: r["spec"]["groups"][0]["rules"][0].pop("expr"),
        lambda r: r["spec"]["groups"][0]["rules"][0].update(fro="5m"),
        lambda r: r["spec"]["groups"][0]["rules"][0].update({"for": "five minutes"}),
        lambda r: r.update(kind="PrometheusRules"),
    )
    for change in changes:
        bad = copy.deepcopy(rule)
        change(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, PROMETHEUS_RULE_SCHEMA)


def test_the_memory_alert_follows_the_reducers_limit() -> None:
    if tool("kubectl") is None:
        pytest.skip("kubectl is missing: run scripts/k8s-test-deps.sh")
    objects = render(DEPLOY / "overlays" / "production")
    (rule,) = find(objects, "PrometheusRule")
    (dashboard,) = [c for c in find(objects, "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard")]
    assert dashboard["metadata"]["namespace"] == "mapreduce"
    assert next(iter(dashboard["data"].values())) == DASHBOARD.read_text()
    (reducer,) = [w for w in find(objects, "StatefulSet") if w["metadata"]["name"] == "reducer"]
    (container,) = reducer["spec"]["template"]["spec"]["containers"]
    limit = bytes_of(container["resources"]["limits"]["memory"])
    threshold = re.search(r">\s*([0-9.]+)\s*\*\s*([0-9]+)\s*$", alerts(rule)["MapReduceReducerMemoryHigh"]["expr"])
    assert threshold is not None
    assert int(threshold.group(2)) == limit, "the alert names the reducer's memory limit: change both together"
    assert 0.8 <= float(threshold.group(1)) < 1


# ---------------------------------------------------------------------------------------------- promtool


def promtool() -> str:
    found = tool("promtool")
    if found is None:
        pytest.skip("promtool is missing: run scripts/k8s-test-deps.sh (it takes promtool from Debian's prometheus)")
    return found


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    result = subprocess.run([promtool(), "check", "rules", str(rules_file(load_rules(), tmp_path / "rules.yaml"))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    shown = ",".join(f'{k}="{v}"' for k, v in {"namespace": "mapreduce", **labels}.items())
    return {"series": f"{name}{{{shown}}}", "values": values}


def test_the_alerts_fire_on_the_series_they_watch_and_only_there(tmp_path: Path) -> None:
    """promtool's rule unit tests, on series shaped as the ServiceMonitor scrapes them (job = the Service; the
    jobs' own label renamed exported_job). Annotations are left out: promtool would compare their rendered text."""
    rule = load_rules()
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            r.pop("annotations", None)
    rules_file(rule, tmp_path / "rules.yaml")
    gib = 2**30
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            series("mapreduce_jobs_total", "0 0 0 1x20", job="master", exported_job="wordcount", state="failed"),
            series("mapreduce_jobs_total", "0 0 0 0x20", job="master", exported_job="grep", state="failed"),
            series("mapreduce_jobs_total", "0 5 10 15x20", job="master", exported_job="grep", state="done"),
            series("mapreduce_split_leases_expired_total", "0 1 2 3 4 5x20", job="master"),
            series("mapreduce_reducer_staging_bytes", "95x25", job="reducer", pod="reducer-0"),
            series("mapreduce_reducer_staging_capacity_bytes", "100x25", job="reducer", pod="reducer-0"),
            series("mapreduce_reducer_staging_bytes", "50x25", job="reducer", pod="reducer-1"),
            series("mapreduce_reducer_staging_capacity_bytes", "100x25", job="reducer", pod="reducer-1"),
            series("process_resident_memory_bytes", f"{int(1.95 * gib)}x25", job="reducer", pod="reducer-0"),
            series("mapreduce_build_info", "1x25", job="reducer", pod="reducer-0", role="reducer"),
            series("process_resident_memory_bytes", f"{int(1.0 * gib)}x25", job="reducer", pod="reducer-1"),
            series("mapreduce_build_info", "1x25", job="reducer", pod="reducer-1", role="reducer"),
            series("process_resident_memory_bytes", f"{int(1.95 * gib)}x25", job="mapper", pod="mapper-0"),
            series("mapreduce_build_info", "1x25", job="mapper", pod="mapper-0", role="mapper"),
        ],
        "alert_rule_test": [
            {"eval_time": "12m", "alertname": "MapReduceJobsFailing", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "mapreduce", "exported_job": "wordcount"}}]},
            {"eval_time": "12m", "alertname": "MapReduceSplitLeasesExpiring", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "mapreduce"}}]},
            {"eval_time": "5m", "alertname": "MapReduceReducerStagingFull", "exp_alerts": []},  # not for 10m yet
            {"eval_time": "12m", "alertname": "MapReduceReducerStagingFull", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "mapreduce", "pod": "reducer-0"}}]},
            {"eval_time": "12m", "alertname": "MapReduceReducerMemoryHigh", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "mapreduce", "pod": "reducer-0"}}]},
        ],
    }]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_promtool_lints_every_roles_exposition(make_cluster: ClusterFactory) -> None:
    """Names, help texts, units and suffixes as Prometheus' own linter wants them, on each role's real scrape."""
    linter = promtool()
    cluster = await make_cluster(mappers=1, reducers=1)
    job = await cluster.submit({"input": {"text": "a b a\n"}})
    assert await cluster.result(job["id"]) == {"a": 2, "b": 1}
    for actor in [cluster.master, *cluster.mappers, *cluster.reducers]:
        async with cluster.session.get(actor.url + "/metrics") as response:
            exposition = await response.read()
        process = await asyncio.create_subprocess_exec(linter, "check", "metrics", stdin=asyncio.subprocess.PIPE,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        async with asyncio.timeout(60):
            output, _ = await process.communicate(exposition)
        assert process.returncode == 0, (actor.url, output.decode())
