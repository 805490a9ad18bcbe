"""deploy/ rendered with ``kubectl kustomize``: strict schema validation, and the cross-object checks schemas can't do.

Needs kubectl, PyYAML and kubernetes-validate (``scripts/k8s-test-deps.sh`` installs them); skips without them.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from actors.core.config import Settings
from actors.core.errors import ConfigError
from actors.reducer.budget import DECODED_RATIO

from .k8s_sim import (
    DEPLOY,
    container_env,
    declared_pods,
    find,
    matches,
    one,
    reducer_count_problems,
    render,
    settings_read,
    tool,
)
from .monitoring import PROMETHEUS_RULE_SCHEMA

yaml = pytest.importorskip("yaml", reason="PyYAML is missing: run scripts/k8s-test-deps.sh")

K8S_VERSION = "1.32.0"  # the pinned schema version: the oldest Kubernetes these manifests promise to run on
ROLES = ("master", "mapper", "reducer")
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    if tool("kubectl") is None:
        pytest.skip("kubectl is missing: run scripts/k8s-test-deps.sh")
    return render()


@pytest.fixture(scope="module")
def kv() -> Any:
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is missing: run k8s-test-deps.sh")


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def workload(objects: list[Obj], role: str) -> Obj:
    (found,) = [w for w in workloads(objects) if w["metadata"]["name"] == role]
    return found


def pod_template(w: Obj) -> Obj:
    template: Obj = w["spec"]["template"]
    return template


def container(w: Obj) -> Obj:
    only: Obj
    (only,) = pod_template(w)["spec"]["containers"]
    return only


def env_value(w: Obj, name: str) -> Obj:
    var: Obj
    (var,) = [v for v in container(w).get("env", []) if v["name"] == name]
    return var


# ---------------------------------------------------------------- what is rendered


def test_renders_the_objects_the_issue_lists(objects: list[Obj]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] in ("ConfigMap", "Secret")
              else o["metadata"]["name"]) for o in objects}
    assert {("Namespace", "mapreduce"), ("Deployment", "master"), ("Service", "master"),
            ("StatefulSet", "mapper"), ("Service", "mapper"), ("StatefulSet", "reducer"), ("Service", "reducer"),
            ("ConfigMap", "mapreduce-settings"), ("Secret", "mapreduce-token"),
            ("PodDisruptionBudget", "mapper"), ("PodDisruptionBudget", "reducer")} <= kinds
    assert len(find(objects, "NetworkPolicy")) >= 4
    assert workload(objects, "master")["spec"]["replicas"] == 1
    assert workload(objects, "mapper")["spec"]["replicas"] == 3  # the article's defaults
    assert workload(objects, "reducer")["spec"]["replicas"] == 2
    assert one(objects, "Service", "master")["spec"].get("type", "ClusterIP") == "ClusterIP"
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "mapreduce", o["metadata"]["name"]
    labels = one(objects, "Namespace", "mapreduce")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_secret_is_generated_and_every_reference_is_rewritten(objects: list[Obj]) -> None:
    (secret,) = find(objects, "Secret")
    assert secret["metadata"]["name"].startswith("mapreduce-token-")  # kustomize's content hash suffix
    for w in workloads(objects):
        ref = env_value(w, "MR_TOKEN")["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["data"]
        assert "value" not in env_value(w, "MR_TOKEN"), "the token must come from the Secret, not a literal"


# ---------------------------------------------------------------- strict schemas


def test_every_object_is_valid_against_the_pinned_schemas(objects: list[Obj], kv: Any) -> None:
    for o in objects:
        kv.validate(o, K8S_VERSION, strict=True)


def _mutations() -> dict[str, Any]:
    def unknown_container_field(objs: list[Obj]) -> Obj:
        o = copy.deepcopy(one(objs, "StatefulSet", "reducer"))
        container(o)["readinessProbes"] = container(o).pop("readinessProbe")  # a typo schemas must catch
        return o

    def unknown_spec_field(objs: list[Obj]) -> Obj:
        o = copy.deepcopy(one(objs, "Service", "mapper"))
        o["spec"]["publishNotReadyAddress"] = True  # missing "es": silently ignored by a lax check
        return o

    def wrong_api_version(objs: list[Obj]) -> Obj:
        o = copy.deepcopy(one(objs, "Deployment", "master"))
        o["apiVersion"] = "extensions/v1beta1"  # removed in 1.16
        return o

    def wrong_pdb_api_version(objs: list[Obj]) -> Obj:
        o = copy.deepcopy(one(objs, "PodDisruptionBudget", "reducer"))
        o["apiVersion"] = "policy/v1beta1"  # removed in 1.25
        return o

    def wrong_type(objs: list[Obj]) -> Obj:
        o = copy.deepcopy(one(objs, "StatefulSet", "mapper"))
        o["spec"]["replicas"] = "three"
        return o

    return {f.__name__: f for f in (unknown_container_field, unknown_spec_field, wrong_api_version,
                                    wrong_pdb_api_version, wrong_type)}


@pytest.mark.parametrize("mutation", sorted(_mutations()))
def test_strict_validation_rejects_a_mutated_object(objects: list[Obj], kv: Any, mutation: str) -> None:
    bad = _mutations()[mutation](objects)
    with pytest.raises((kv.ValidationError, kv.SchemaNotFoundError)):
        kv.validate(bad, K8S_VERSION, strict=True)
    if mutation.startswith("unknown_"):
        kv.validate(bad, K8S_VERSION, strict=False)  # only strict mode catches a misspelt field


# ---------------------------------------------------------------- selectors and Services


def test_workload_selectors_match_their_pod_templates(objects: list[Obj]) -> None:
    for w in workloads(objects):
        assert matches(w["spec"]["selector"], pod_template(w)["metadata"]["labels"]), w["metadata"]["name"]
        others = [x for x in workloads(objects) if x is not w]
        assert not any(matches(w["spec"]["selector"], pod_template(x)["metadata"]["labels"]) for x in others)


def test_each_service_selects_exactly_its_role(objects: list[Obj]) -> None:
    for service in find(objects, "Service"):
        selected = [w["metadata"]["name"] for w in workloads(objects)
                    if matches(service["spec"]["selector"], pod_template(w)["metadata"]["labels"])]
        assert selected == [service["metadata"]["name"]], f"Service {service['metadata']['name']} selects {selected}"


def test_statefulsets_name_headless_services(objects: list[Obj]) -> None:
    for sts in find(objects, "StatefulSet"):
        service = one(objects, "Service", sts["spec"]["serviceName"])
        assert service["spec"].get("clusterIP") == "None", "serviceName must name a headless Service"
        assert matches(service["spec"]["selector"], pod_template(sts)["metadata"]["labels"])
        assert sts["spec"]["podManagementPolicy"] == "Parallel"
        assert service["spec"]["publishNotReadyAddresses"] is False  # a decision, written out (see reducer.yaml)
        for port in service["spec"]["ports"]:
            assert port.get("name"), "unnamed ports get no usable SRV record"


def test_ports_agree_by_name(objects: list[Obj]) -> None:
    for w in workloads(objects):
        role = w["metadata"]["name"]
        c = container(w)
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            port = c[probe]["httpGet"]["port"]
            assert port in named, f"{role} {probe} port {port!r} is not a named container port"
        service = one(objects, "Service", role)
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in named, f"Service {role} targets {target!r}, not a container port of {role}"
            if service["spec"].get("clusterIP") == "None":
                assert port["port"] == named[target], "a headless Service's port should be the pod's port"
        env = container_env(declared_pods([w])[0], objects, "10.0.0.1")
        settings = Settings.from_env(env)
        assert settings.port == named["http"], f"{role} listens on {settings.port}, the manifest says {named}"
        if service["spec"].get("clusterIP") == "None":
            assert settings.port_name in {p["name"] for p in service["spec"]["ports"]}
    mapper_port = container(workload(objects, "mapper"))["ports"][0]["containerPort"]
    reducer_port = container(workload(objects, "reducer"))["ports"][0]["containerPort"]
    for w in workloads(objects):
        settings = Settings.from_env(container_env(declared_pods([w])[0], objects, "10.0.0.1"))
        assert (settings.mapper_port, settings.reducer_port) == (mapper_port, reducer_port)


# ---------------------------------------------------------------- env: what the code reads, what it needs


def test_settings_parse_finds_the_settings() -> None:
    read = settings_read()
    assert {"TYPE", "MAPPER_HOST", "REDUCER_PORT", "MR_TOKEN", "MR_NAMESPACE", "MR_TIMEOUT_DRAIN"} <= read
    assert "MR_NO_SUCH_SETTING" not in read


def test_every_env_var_the_manifests_set_is_a_setting_the_code_reads(objects: list[Obj]) -> None:
    read = settings_read()
    for w in workloads(objects):
        c = container(w)
        names = {v["name"] for v in c.get("env", [])}
        for source in c.get("envFrom", []):
            kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else (
                "Secret", source["secretRef"])
            obj = one(objects, kind, ref["name"])
            names |= {source.get("prefix", "") + k for k in obj.get("data", {})}
        unknown = names - read
        assert not unknown, f"{w['metadata']['name']} sets {sorted(unknown)}, which actors/core/config.py never reads"


@pytest.mark.parametrize("role", ROLES)
def test_every_required_setting_is_set(objects: list[Obj], role: str) -> None:
    w = workload(objects, role)
    pods = declared_pods([w])
    for pod in pods:
        env = container_env(pod, objects, "10.1.2.3")
        settings = Settings.from_env(env)
        assert settings.role == role
        assert settings.discovery == "dns"
        assert settings.token, "MR_TOKEN must be set: the actors refuse internal calls without it"
        assert settings.name == pod.name
        assert settings.namespace == "mapreduce"
        assert settings.spool_dir in {m["mountPath"] for m in container(w)["volumeMounts"]}
        assert one(objects, "StatefulSet", settings.mapper_host)["spec"]["serviceName"] == settings.mapper_host
        assert one(objects, "StatefulSet", settings.reducer_host)["spec"]["serviceName"] == settings.reducer_host
        if pod.ordinal is not None:
            assert settings.ordinal == pod.ordinal, "the ordinal must come from the pod name"
            assert env_value(w, "MR_ADVERTISE_HOST")["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
            assert settings.advertise_url == f"http://10.1.2.3:{settings.port}"
    for name, path in (("MR_NAME", "metadata.name"), ("MR_NAMESPACE", "metadata.namespace")):
        assert env_value(w, name)["valueFrom"]["fieldRef"]["fieldPath"] == path
    if role == "master":
        settings = Settings.from_env(container_env(pods[0], objects, "10.1.2.3"))
        assert settings.state_dir in {m["mountPath"] for m in container(w)["volumeMounts"]}, "journal not mounted"
        # Mappers read input ranges from this URL: the pod's own IP, not the master Service, which a draining
        # (or not yet ready) master leaves while its running jobs still need their inputs.
        url = urlsplit(Settings.from_env(container_env(pods[0], objects, "10.1.2.3")).advertise_url)
        assert url.hostname == "10.1.2.3"
        assert env_value(w, "MR_ADVERTISE_HOST")["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert url.port == container(w)["ports"][0]["containerPort"]


def test_probe_paths_are_real_routes(objects: list[Obj]) -> None:
    from actors.serve import build_app

    for w in workloads(objects):
        env = container_env(declared_pods([w])[0], objects, "10.0.0.1")
        app = build_app(Settings.from_env(env))
        routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
        c = container(w)
        for probe in ("readinessProbe", "livenessProbe"):
            path = c[probe]["httpGet"]["path"]
            assert ("GET", path) in routes, f"{w['metadata']['name']} {probe} {path} is not a route: {routes}"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


# ---------------------------------------------------------------- pod security and resources


def test_pods_meet_the_restricted_pod_security_standard(objects: list[Obj]) -> None:
    for w in workloads(objects):
        spec = pod_template(w)["spec"]
        pod_sc, c = spec["securityContext"], container(w)
        sc = c["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
        assert sc["readOnlyRootFilesystem"] is True
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        settings = Settings.from_env(container_env(declared_pods([w])[0], objects, "10.0.0.1"))
        for path in (settings.spool_dir, "/tmp"):
            assert path in mounts and "emptyDir" in volumes[mounts[path]], f"{path} needs a writable emptyDir"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{w['metadata']['name']} {kind}"


# ---------------------------------------------------------------- shutdown inside the grace period


EXIT_MARGIN = 3.0  # seconds a process may need past its drain deadline to be gone (tests/test_serve.py measures it)


def grace_problems(objects: list[Obj]) -> list[str]:
    """Workloads whose pods could be SIGKILLed mid-drain: preStop sleep + MR_TIMEOUT_DRAIN + margin >= the grace."""
    problems = []
    for w in workloads(objects):
        spec = pod_template(w)["spec"]
        pre_stop = container(w).get("lifecycle", {}).get("preStop", {})
        sleep = pre_stop.get("sleep", {}).get("seconds", 0)
        drain = Settings.from_env(container_env(declared_pods([w])[0], objects, "10.0.0.1")).timeouts.drain
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if not sleep + drain + EXIT_MARGIN < grace:
            problems.append(f"{w['metadata']['name']}: preStop {sleep} s + MR_TIMEOUT_DRAIN {drain:g} s + "
                            f"{EXIT_MARGIN:g} s >= terminationGracePeriodSeconds {grace}")
    return problems


def test_the_drain_budget_fits_inside_the_grace_period(objects: list[Obj]) -> None:
    assert grace_problems(objects) == []
    for w in workloads(objects):
        pre_stop = container(w)["lifecycle"]["preStop"]
        # A sleep action, not an exec of `sleep`: the image need not have a shell or coreutils.
        assert set(pre_stop) == {"sleep"} and pre_stop["sleep"]["seconds"] > 0, w["metadata"]["name"]


def test_the_grace_check_sees_a_drain_too_long_for_the_grace(objects: list[Obj]) -> None:
    mutated = copy.deepcopy(objects)
    (config,) = find(mutated, "ConfigMap")
    config["data"]["MR_TIMEOUT_DRAIN"] = "25"  # 5 s preStop + 25 s + margin > 30 s
    assert sorted(p.split(":")[0] for p in grace_problems(mutated)) == ["mapper", "master", "reducer"]


# ---------------------------------------------------------------- the reducer count


def test_every_actor_is_told_the_reducer_statefulsets_replicas(objects: list[Obj]) -> None:
    assert reducer_count_problems(objects) == []
    assert one(objects, "StatefulSet", "reducer")["spec"]["replicas"] == 2


KUSTOMIZATIONS = sorted(str(k.parent.relative_to(DEPLOY)) for k in DEPLOY.rglob("kustomization.yaml")
                        if "kind: Component" not in k.read_text()
                        and k.parent.name not in ("reducer-count", "monitoring"))  # those two hold no actors


def test_the_agreement_check_sees_every_kustomization() -> None:
    assert {".", "base", "overlays/dev", "overlays/production"} <= set(KUSTOMIZATIONS)


@pytest.mark.parametrize("where", KUSTOMIZATIONS)
def test_every_kustomization_tells_every_actor_its_reducer_replicas(where: str) -> None:
    """deploy/overlays/production rendered 4 reducers told MR_REDUCER_COUNT=2: two idle, four nodes asked for."""
    if tool("kubectl") is None:
        pytest.skip("kubectl is missing: run scripts/k8s-test-deps.sh")
    rendered = render(DEPLOY / where)
    if not find(rendered, "Secret"):
        rendered.append(OUT_OF_BAND)  # production's token Secret is made out of band
    assert reducer_count_problems(rendered) == []
    replicas = one(rendered, "StatefulSet", "reducer")["spec"]["replicas"]
    (config,) = [c for c in find(rendered, "ConfigMap") if "MR_REDUCER_COUNT" in c.get("data", {})]  # not Grafana's
    assert config["data"]["MR_REDUCER_COUNT"] == str(replicas)  # a string, as a ConfigMap's data must be


def test_the_settings_placeholder_is_never_taken_for_a_count() -> None:
    """Rendered without deploy/reducer-count, the base's placeholder stops every actor instead of a wrong count."""
    (line,) = [x for x in (DEPLOY / "base" / "settings.env").read_text().splitlines()
               if x.startswith("MR_REDUCER_COUNT=")]
    with pytest.raises(ConfigError, match="MR_REDUCER_COUNT"):
        Settings.from_env({"MR_REDUCER_COUNT": line.partition("=")[2]})


# ---------------------------------------------------------------- NetworkPolicies and PDBs


def _pod_labels(objects: list[Obj]) -> dict[str, dict[str, str]]:
    return {w["metadata"]["name"]: pod_template(w)["metadata"]["labels"] for w in workloads(objects)}


def _peer_matches(peer: Obj, labels: dict[str, str]) -> bool:
    """A NetworkPolicy peer against a pod of our namespace (a namespaceSelector {} admits every namespace)."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer and peer["namespaceSelector"] != {}:
        ns_labels = {"kubernetes.io/metadata.name": "mapreduce"}
        if not matches(peer["namespaceSelector"], ns_labels):
            return False
    return matches(peer.get("podSelector", {}), labels)


def _port_ok(rule: Obj, port_name: str, port_number: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (port_name, port_number, None) for p in ports)


def _allowed(objects: list[Obj], src: str, dst: str) -> bool:
    """Whether ``src`` pods may open a connection to ``dst`` pods' http port under the NetworkPolicies."""
    labels = _pod_labels(objects)
    port = container(workload(objects, dst))["ports"][0]["containerPort"]
    policies = find(objects, "NetworkPolicy")

    def direction_ok(pod: str, kind: str, key: str, peer_key: str, other: str) -> bool:
        selecting = [p for p in policies if matches(p["spec"]["podSelector"], labels[pod])
                     and kind in p["spec"].get("policyTypes", ["Ingress"])]
        if not selecting:
            return True  # not isolated in that direction
        return any(_peer_matches(peer, labels[other]) and _port_ok(rule, "http", port)
                   for p in selecting for rule in p["spec"].get(key, []) for peer in rule.get(peer_key, []))

    return (direction_ok(src, "Egress", "egress", "to", dst)
            and direction_ok(dst, "Ingress", "ingress", "from", src))


def test_network_policies_let_through_only_the_actors_paths(objects: list[Obj]) -> None:
    wanted = {("master", "mapper"), ("mapper", "master"), ("mapper", "reducer"), ("master", "reducer"),
              ("reducer", "master")}
    allowed = {(s, d) for s in ROLES for d in ROLES if s != d and _allowed(objects, s, d)}
    assert allowed == wanted
    for role in ROLES:
        assert not _allowed(objects, role, role), f"{role} pods need not talk to each other"


def test_the_policy_check_sees_a_missing_rule(objects: list[Obj]) -> None:
    """The evaluator above is not vacuous: drop the mappers' egress to the master and that path closes."""
    mutated = copy.deepcopy(objects)
    mapper_policy = one(mutated, "NetworkPolicy", "mapper")
    for rule in mapper_policy["spec"]["egress"]:
        rule["to"] = [p for p in rule["to"] if p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
                      != "master"]
    assert not _allowed(mutated, "mapper", "master")
    assert _allowed(mutated, "mapper", "reducer")


def _may_reach_address(objects: list[Obj], src: str, address: str, port: int) -> bool:
    """Whether ``src`` pods may open a TCP connection to ``address``:``port`` outside the cluster (ipBlock rules)."""
    labels = _pod_labels(objects)[src]
    target = ipaddress.ip_address(address)
    selecting = [p for p in find(objects, "NetworkPolicy") if matches(p["spec"]["podSelector"], labels)
                 and "Egress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True

    def inside(block: Obj) -> bool:
        def within(cidr: str) -> bool:
            network = ipaddress.ip_network(cidr)
            return network.version == target.version and target in network
        return within(block["cidr"]) and not any(within(c) for c in block.get("except", []))

    def port_ok(rule: Obj) -> bool:
        ports = rule.get("ports")
        return not ports or any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (None, port) for p in ports)

    return any("ipBlock" in peer and inside(peer["ipBlock"]) and port_ok(rule)
               for p in selecting for rule in p["spec"].get("egress", []) for peer in rule.get("to", []))


PUBLIC_INPUTS = [("93.184.215.14", 443), ("93.184.215.14", 8080), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", 443)]
INSIDE = [("169.254.169.254", 80), ("10.96.0.1", 443), ("127.0.0.1", 8080), ("192.168.1.1", 80), ("172.20.0.1", 80),
          ("100.64.0.1", 80), ("fd00::1", 443), ("fe80::1", 80), ("::1", 80)]


@pytest.mark.parametrize("role", ["master", "mapper"])
def test_master_and_mappers_may_fetch_public_url_inputs(objects: list[Obj], role: str) -> None:
    # The master probes a URL input's size (HEAD), the mappers read it: both need the same egress.
    for address, port in PUBLIC_INPUTS:
        assert _may_reach_address(objects, role, address, port), f"{role} cannot reach {address}:{port}"
    for address, port in INSIDE:
        assert not _may_reach_address(objects, role, address, port), f"{role} may reach {address}:{port}"


def test_reducers_reach_nothing_outside(objects: list[Obj]) -> None:
    for address, port in PUBLIC_INPUTS + INSIDE:
        assert not _may_reach_address(objects, "reducer", address, port), f"reducer may reach {address}:{port}"


def test_the_address_check_sees_a_missing_url_rule(objects: list[Obj]) -> None:
    """The evaluator above is not vacuous: without the URL-input policy nobody reaches a public address."""
    mutated = [o for o in copy.deepcopy(objects)
               if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-url-inputs")]
    assert not _may_reach_address(mutated, "mapper", *PUBLIC_INPUTS[0])


def test_network_policy_selectors_match_real_pods(objects: list[Obj]) -> None:
    labels = _pod_labels(objects)
    for policy in find(objects, "NetworkPolicy"):
        spec = policy["spec"]
        assert any(matches(spec["podSelector"], pod) for pod in labels.values()), policy["metadata"]["name"]
        for key, peer_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(key, []):
                for peer in rule.get(peer_key, []):
                    if "namespaceSelector" in peer or "ipBlock" in peer:
                        continue  # another namespace's pods (clients, kube-dns), or addresses outside
                    assert any(_peer_matches(peer, pod) for pod in labels.values()), (policy["metadata"], peer)


def test_every_pod_may_reach_cluster_dns(objects: list[Obj]) -> None:
    dns_pod = {"k8s-app": "kube-dns"}
    for role, labels in _pod_labels(objects).items():
        rules = [rule for p in find(objects, "NetworkPolicy")
                 if matches(p["spec"]["podSelector"], labels) and "Egress" in p["spec"].get("policyTypes", [])
                 for rule in p["spec"].get("egress", [])]
        protocols = set()
        for rule in rules:
            for peer in rule.get("to", []):
                ns = peer.get("namespaceSelector", {})
                if matches(ns, {"kubernetes.io/metadata.name": "kube-system"}) and matches(
                        peer.get("podSelector", {}), dns_pod):
                    protocols |= {p["protocol"] for p in rule.get("ports", []) if p.get("port") == 53}
        assert protocols == {"UDP", "TCP"}, f"{role} cannot reach cluster DNS"


def test_pod_disruption_budgets_select_real_pods(objects: list[Obj]) -> None:
    labels = _pod_labels(objects)
    for pdb in find(objects, "PodDisruptionBudget"):
        selected = [r for r, pod in labels.items() if matches(pdb["spec"]["selector"], pod)]
        assert selected == [pdb["metadata"]["name"]]


# ---------------------------------------------------------------- scaling touches nothing else


def _overlay(tmp_path: Path, body: str) -> list[Obj]:
    base = os.path.relpath(DEPLOY, tmp_path)  # kustomize refuses an absolute base
    (tmp_path / "kustomization.yaml").write_text(f"resources:\n  - {base}\n{body}")
    try:
        return render(tmp_path)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"kustomize overlay failed: {exc.stderr}")


def test_scaling_mappers_changes_only_the_replicas(objects: list[Obj], tmp_path: Path) -> None:
    scaled = _overlay(tmp_path, "replicas:\n  - name: mapper\n    count: 5\n")
    assert len(scaled) == len(objects)
    for before, after in zip(objects, scaled, strict=True):
        if after["kind"] == "StatefulSet":
            after = copy.deepcopy(after)
            after["spec"]["replicas"] = before["spec"]["replicas"]
        assert before == after
    assert one(scaled, "StatefulSet", "mapper")["spec"]["replicas"] == 5


def test_scaling_reducers_changes_the_replicas_and_the_count_together(objects: list[Obj], tmp_path: Path) -> None:
    """The documented recipe: the replicas, with the reducer-count transformer listed; MR_REDUCER_COUNT follows and
    nothing else changes (but the ConfigMap's new name)."""
    transformer = os.path.relpath(DEPLOY / "reducer-count", tmp_path)
    scaled = _overlay(tmp_path, f"replicas:\n  - name: reducer\n    count: 4\ntransformers:\n  - {transformer}\n")
    assert reducer_count_problems(scaled) == []
    assert one(scaled, "StatefulSet", "reducer")["spec"]["replicas"] == 4
    (old_config,), (new_config,) = find(objects, "ConfigMap"), find(scaled, "ConfigMap")
    assert new_config["metadata"]["name"] != old_config["metadata"]["name"]  # new hash: every pod rolls
    assert new_config["data"] == {**old_config["data"], "MR_REDUCER_COUNT": "4"}
    renamed = json.loads(json.dumps(objects).replace(old_config["metadata"]["name"], new_config["metadata"]["name"]))
    for before, after in zip(renamed, scaled, strict=True):
        after = copy.deepcopy(after)
        if after["kind"] == "StatefulSet":
            after["spec"]["replicas"] = before["spec"]["replicas"]
        if after["kind"] == "ConfigMap":
            after["data"]["MR_REDUCER_COUNT"] = before["data"]["MR_REDUCER_COUNT"]
        assert before == after


def test_scaling_reducers_without_the_count_is_caught(tmp_path: Path) -> None:
    scaled = _overlay(tmp_path, "replicas:\n  - name: reducer\n    count: 4\n")
    assert sorted(p.split(":")[0] for p in reducer_count_problems(scaled)) == ["mapper", "master", "reducer"]


def test_the_documented_token_overlay_replaces_the_sample(objects: list[Obj], tmp_path: Path) -> None:
    """docs/kubernetes.md's recipe for a real token: an overlay whose secretGenerator replaces the sample."""
    base = os.path.relpath(DEPLOY, tmp_path)
    (tmp_path / "token.env").write_text("MR_TOKEN=a-real-token\n")
    (tmp_path / "kustomization.yaml").write_text(
        f"resources:\n  - {base}\nsecretGenerator:\n  - name: mapreduce-token\n    behavior: replace\n"
        "    envs:\n      - token.env\n")
    overlaid = render(tmp_path)
    (secret,) = find(overlaid, "Secret")
    (sample,) = find(objects, "Secret")
    assert secret["metadata"]["name"] != sample["metadata"]["name"]  # new hash: pods roll onto the new token
    for w in workloads(overlaid):
        env = container_env(declared_pods([w])[0], overlaid, "10.0.0.1")
        assert env["MR_TOKEN"] == "a-real-token"


# ---------------------------------------------------------------- the master's memory and disk budgets

QUANTITY = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
MiB = 2**20
ASSEMBLY = 12  # a result being assembled (reports, merged dict, its order, its JSON) takes ~12x its JSON bytes
BASELINE = 256 * MiB  # the interpreter, libraries, request buffers and the job table
JSON_PARSE = 10  # reading and parsing a JSON body holds up to 10x its bytes (actors/master/limits.py parse_cost)


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(quantity)).groups()  # type: ignore[union-attr]
    return int(float(number) * QUANTITY[unit])


def _master_budget_problems(objects: list[Obj]) -> list[str]:
    """Where the master's manifest and its settings disagree: docs/limits.md's "Master" arithmetic."""
    w = workload(objects, "master")
    settings = Settings.from_env(container_env(declared_pods([w])[0], objects, "10.0.0.1"))
    c, volumes = container(w), {v["name"]: v for v in pod_template(w)["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    spool = _bytes(volumes[mounts[settings.spool_dir]]["emptyDir"]["sizeLimit"])
    memory = _bytes(c["resources"]["limits"]["memory"])
    ephemeral = _bytes(c["resources"]["limits"]["ephemeral-storage"])
    problems = []
    if settings.upload_budget >= spool:
        problems.append(f"MR_UPLOAD_BUDGET {settings.upload_budget} must stay below the spool sizeLimit {spool}")
    if settings.max_body > settings.upload_budget:
        problems.append("MR_MAX_BODY must fit in MR_UPLOAD_BUDGET, or the largest upload could never be taken")
    needed = settings.results_budget + ASSEMBLY * settings.result_max + settings.text_budget + BASELINE
    if needed > memory:
        problems.append(f"results budget + {ASSEMBLY} x MR_RESULT_MAX + MR_TEXT_BUDGET + baseline = {needed} > "
                        f"memory limit {memory}")
    if JSON_PARSE * settings.max_json > settings.text_budget:
        problems.append(f"{JSON_PARSE} x MR_MAX_JSON must fit in MR_TEXT_BUDGET, or the largest JSON body could "
                        "never be taken")
    if settings.result_max > settings.results_budget:
        problems.append("MR_RESULT_MAX must fit in MR_RESULTS_BUDGET")
    emptydirs = sum(_bytes(v["emptyDir"].get("sizeLimit", "0")) for v in volumes.values() if "emptyDir" in v)
    if emptydirs > ephemeral:
        problems.append(f"the emptyDir sizeLimits ({emptydirs}) pass the ephemeral-storage limit {ephemeral}")
    return problems


def test_master_manifest_agrees_with_its_memory_and_disk_budgets(objects: list[Obj]) -> None:
    assert _master_budget_problems(objects) == []


def test_master_budget_check_is_not_vacuous(objects: list[Obj]) -> None:
    """Shrink the spool volume, the memory limit, or raise the results budget: each disagreement is caught."""
    def mutated(change: Any) -> list[Obj]:
        objs = copy.deepcopy(objects)
        change(workload(objs, "master"))
        return objs

    def small_spool(w: Obj) -> None:
        for v in pod_template(w)["spec"]["volumes"]:
            if v["name"] == "spool":
                v["emptyDir"]["sizeLimit"] = "4Gi"

    def small_memory(w: Obj) -> None:
        container(w)["resources"]["limits"]["memory"] = "512Mi"

    def big_results(w: Obj) -> None:
        container(w)["env"].append({"name": "MR_RESULTS_BUDGET", "value": str(768 * MiB)})

    def big_texts(w: Obj) -> None:
        container(w)["env"].append({"name": "MR_TEXT_BUDGET", "value": str(512 * MiB)})

    def big_json(w: Obj) -> None:
        container(w)["env"].append({"name": "MR_MAX_JSON", "value": str(64 * MiB)})

    for change, word in ((small_spool, "MR_UPLOAD_BUDGET"), (small_memory, "memory limit"),
                         (big_results, "memory limit"), (big_texts, "memory limit"), (big_json, "MR_MAX_JSON")):
        problems = _master_budget_problems(mutated(change))
        assert any(word in p for p in problems), (change.__name__, problems)


# ---------------------------------------------------------------- memory limits agree with the budgets

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
# The terms of docs/limits.md "Reducer and mapper", which explains each.
REDUCER_TOTALS = 1024 * MiB  # a partition's merged totals: about 10 M distinct keys at ~100 B each
REPORT_SHARE = 1 / 6  # the encoded report at finalize, beside the totals (wire bytes per decoded byte)
MAPPER_KEY_BYTES = 240  # one key of the partial Counter plus its partitioned copy (measured ~100 B + ~40 B)
OVERHEAD = 200 * MiB  # interpreter, aiohttp, libraries, buffers (an idle actor is ~60 MB RSS)


def quantity(text: str) -> int:
    """A Kubernetes memory quantity in bytes ("2Gi", "512Mi", "1G", "1048576")."""
    for suffix, factor in _UNITS.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def test_quantity() -> None:
    assert quantity("2Gi") == 2 * 2**30
    assert quantity("512Mi") == 512 * 2**20
    assert quantity("1G") == 10**9
    assert quantity("1048576") == 2**20


def role_settings(objects: list[Obj], role: str) -> tuple[Settings, int]:
    """The settings the role's first pod reads, and its container's memory limit in bytes."""
    w = workload(objects, role)
    pod = declared_pods([w])[0]
    settings = Settings.from_env(container_env(pod, objects, "10.1.2.3"))
    return settings, quantity(container(w)["resources"]["limits"]["memory"])


def reducer_peak(s: Settings) -> float:
    # Staged streams are charged by decoded size up to MR_STAGE_BUDGET; each also holds one raw frame of at most
    # its declared size, which is 1/DECODED_RATIO of its reservation.
    staging = s.stage_budget * (1 + 1 / DECODED_RATIO)
    return staging + REDUCER_TOTALS * (1 + REPORT_SHARE) + OVERHEAD


def mapper_peak(s: Settings, partitions: int) -> float:
    # The partial values up to MR_KEY_BUDGET keys; a chunk as bytes, text and its split words (~8x); the longest
    # key as buffer, piece, text and its encoding (4x); each partition's spool in memory (8 MiB, then disk);
    # two frames being encoded.
    return (s.key_budget * MAPPER_KEY_BYTES + 8 * s.chunk_size + 4 * s.max_key + partitions * 8 * MiB
            + 2 * s.frame_cap + OVERHEAD)


def test_memory_limits_cover_the_budgets(objects: list[Obj]) -> None:
    reducer, reducer_limit = role_settings(objects, "reducer")
    mapper, mapper_limit = role_settings(objects, "mapper")
    partitions = workload(objects, "reducer")["spec"]["replicas"]
    assert reducer_peak(reducer) < reducer_limit, (reducer_peak(reducer) / MiB, reducer_limit / MiB)
    assert mapper_peak(mapper, partitions) < mapper_limit, (mapper_peak(mapper, partitions) / MiB, mapper_limit / MiB)


def test_the_memory_check_sees_a_budget_past_the_limit(objects: list[Obj]) -> None:
    reducer, reducer_limit = role_settings(objects, "reducer")
    assert reducer_peak(reducer.replace(stage_budget=2 * reducer_limit)) > reducer_limit
    mapper, mapper_limit = role_settings(objects, "mapper")
    assert mapper_peak(mapper.replace(max_key=mapper_limit // 4), 2) > mapper_limit
# ---------------------------------------------------------------- scraping annotations (base)


def test_pods_are_annotated_for_scraping_on_their_own_port(objects: list[Obj]) -> None:
    for w in workloads(objects):
        annotations = pod_template(w)["metadata"]["annotations"]
        http = {p["name"]: p["containerPort"] for p in container(w)["ports"]}["http"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(http), w["metadata"]["name"]
        assert annotations["prometheus.io/path"] == "/metrics"


# ---------------------------------------------------------------- overlays: dev and production

OVERLAYS = DEPLOY / "overlays"
SAMPLE_TOKEN = (DEPLOY / "base" / "token.sample.env").read_text().strip().partition("=")[2]
# The Secret production creates out of band (kubectl create secret ...), as the checks below need it to exist.
OUT_OF_BAND = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mapreduce-token", "namespace": "mapreduce"},
               "data": {"MR_TOKEN": "cmVhbC10b2tlbg==", "MR_API_TOKEN": "cmVhbC1hcGktdG9rZW4="}}
DIGEST = re.compile(r"[a-z0-9.\-/:]+@sha256:[0-9a-f]{64}")
# The ServiceMonitor is a CRD kubernetes-validate has no schema for: its required fields, and no unknown ones where
# this overlay writes them (a misspelt endpoint field would be silently pruned by the API server).
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": {"type": "object"}}},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "jobLabel": {"type": "string"},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["port"], "additionalProperties": False,
                    "properties": {"port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                                   "scheme": {"enum": ["http", "https"]},
                                   "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                   "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}}}},
            },
        },
    },
}


@pytest.fixture(scope="module")
def overlays(objects: list[Obj]) -> dict[str, list[Obj]]:
    return {name: render(OVERLAYS / name) for name in ("dev", "production")}


@pytest.fixture(scope="module")
def jsonschema() -> Any:
    return pytest.importorskip("jsonschema", reason="jsonschema (a kubernetes-validate dependency) is missing")


def _millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def _with_secret(name: str, objs: list[Obj]) -> list[Obj]:
    return [*objs, OUT_OF_BAND] if name == "production" else objs


@pytest.mark.parametrize("name", ["dev", "production"])
def test_overlay_objects_are_valid_strictly(overlays: dict[str, list[Obj]], kv: Any, jsonschema: Any,
                                            name: str) -> None:
    monitors = 0
    for o in overlays[name]:
        if o["kind"] == "ServiceMonitor":
            jsonschema.validate(o, SERVICE_MONITOR_SCHEMA)
            monitors += 1
        elif o["kind"] == "PrometheusRule":
            jsonschema.validate(o, PROMETHEUS_RULE_SCHEMA)  # deploy/monitoring; tests/test_monitoring.py checks more
        else:
            kv.validate(o, K8S_VERSION, strict=True)
    assert monitors == (1 if name == "production" else 0)


def test_the_service_monitor_schema_is_not_vacuous(overlays: dict[str, list[Obj]], jsonschema: Any) -> None:
    (monitor,) = find(overlays["production"], "ServiceMonitor")
    changes: tuple[Callable[[Obj], object], ...] = (
        lambda m: m["spec"]["endpoints"][0].pop("port"), lambda m: m["spec"].pop("selector"),
        lambda m: m["spec"]["endpoints"][0].update(intervall="30s"),
        lambda m: m.update(apiVersion="monitoring.coreos.com/v1alpha1"),
    )
    for change in changes:
        bad = copy.deepcopy(monitor)
        change(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SERVICE_MONITOR_SCHEMA)


@pytest.mark.parametrize("name", ["dev", "production"])
def test_overlays_keep_the_bases_wiring(overlays: dict[str, list[Obj]], name: str) -> None:
    objs = _with_secret(name, overlays[name])
    for w in workloads(objs):
        assert matches(w["spec"]["selector"], pod_template(w)["metadata"]["labels"])
        for pod in declared_pods([w]):
            settings = Settings.from_env(container_env(pod, objs, "10.1.2.3"))
            assert settings.role == w["metadata"]["name"] and settings.token
            assert settings.spool_dir in {m["mountPath"] for m in container(w)["volumeMounts"]}
    for service in find(objs, "Service"):
        selected = [w["metadata"]["name"] for w in workloads(objs)
                    if matches(service["spec"]["selector"], pod_template(w)["metadata"]["labels"])]
        assert selected == [service["metadata"]["name"]]
    for o in objs:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "mapreduce", (o["kind"], o["metadata"]["name"])
    assert _master_budget_problems(objs) == []


def test_dev_overlay_runs_the_local_image_small_with_the_sample_token(objects: list[Obj],
                                                                     overlays: dict[str, list[Obj]]) -> None:
    dev = overlays["dev"]
    for w in workloads(dev):
        c, base = container(w), container(workload(objects, w["metadata"]["name"]))
        assert c["image"] == "mapreduce-actors:latest" and c["imagePullPolicy"] == "Never"
        assert _bytes(c["resources"]["limits"]["memory"]) < _bytes(base["resources"]["limits"]["memory"])
        assert _millicores(c["resources"]["requests"]["cpu"]) < _millicores(base["resources"]["requests"]["cpu"])
        env = container_env(declared_pods([w])[0], dev, "10.0.0.1")
        assert env["MR_TOKEN"] == SAMPLE_TOKEN
    assert workload(dev, "mapper")["spec"]["replicas"] == 2 and workload(dev, "reducer")["spec"]["replicas"] == 2


def test_production_overlay_renders_no_sample_token(overlays: dict[str, list[Obj]]) -> None:
    prod = overlays["production"]
    assert find(prod, "Secret") == []
    assert SAMPLE_TOKEN not in yaml.safe_dump_all(prod)
    for w in workloads(prod):
        assert env_value(w, "MR_TOKEN")["valueFrom"]["secretKeyRef"] == {"name": "mapreduce-token", "key": "MR_TOKEN"}
    api = env_value(workload(prod, "master"), "MR_API_TOKEN")["valueFrom"]["secretKeyRef"]
    assert api == {"name": "mapreduce-token", "key": "MR_API_TOKEN"}
    env = container_env(declared_pods([workload(prod, "master")])[0], [*prod, OUT_OF_BAND], "10.0.0.1")
    assert Settings.from_env(env).api_token == "real-api-token"


def test_production_overlay_pins_the_image_by_digest(overlays: dict[str, list[Obj]]) -> None:
    for w in workloads(overlays["production"]):
        assert DIGEST.fullmatch(container(w)["image"]), container(w)["image"]


def test_production_journal_is_on_a_claim_that_survives_the_pod(overlays: dict[str, list[Obj]]) -> None:
    prod = [*overlays["production"], OUT_OF_BAND]
    master = workload(prod, "master")
    settings = Settings.from_env(container_env(declared_pods([master])[0], prod, "10.0.0.1"))
    mounts = {m["mountPath"]: m["name"] for m in container(master)["volumeMounts"]}
    volume = {v["name"]: v for v in pod_template(master)["spec"]["volumes"]}[mounts[settings.state_dir]]
    assert set(volume) == {"name", "persistentVolumeClaim"}, volume  # the base's emptyDir is gone
    claim = one(prod, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert master["spec"]["strategy"]["type"] == "Recreate"  # one pod at a time may hold a ReadWriteOnce claim


def test_production_reducers_never_share_a_node(overlays: dict[str, list[Obj]]) -> None:
    prod = overlays["production"]
    labels = _pod_labels(prod)
    terms = pod_template(workload(prod, "reducer"))["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    hostname = [t for t in terms if t["topologyKey"] == "kubernetes.io/hostname"]
    assert hostname, "reducers need a required anti-affinity on the node name"
    for term in hostname:
        assert matches(term["labelSelector"], labels["reducer"])
        assert not matches(term["labelSelector"], labels["mapper"])
        assert not matches(term["labelSelector"], labels["master"])


def test_production_outputs_volume_is_shared_read_write_many(overlays: dict[str, list[Obj]]) -> None:
    prod = overlays["production"]
    paths, work = set(), set()
    # Mappers too: a multi-step job's later step reads there the intermediate files the reducers wrote.
    for role in ("master", "reducer", "mapper"):
        w = workload(prod, role)
        volumes = {v["name"]: v for v in pod_template(w)["spec"]["volumes"]}
        (mount,) = [m for m in container(w)["volumeMounts"] if m["name"] == "outputs"]
        claim = one(prod, "PersistentVolumeClaim", volumes["outputs"]["persistentVolumeClaim"]["claimName"])
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
        paths.add(mount["mountPath"])
        (work_dir,) = [e["value"] for e in container(w)["env"] if e["name"] == "MR_WORK_DIR"]
        assert work_dir.startswith(mount["mountPath"] + "/"), (role, work_dir)
        work.add(work_dir)
    assert paths == {"/var/lib/mapreduce-outputs"}  # one documented path in every pod that writes outputs
    assert len(work) == 1  # one directory every role shares


def test_production_service_monitor_scrapes_every_role(overlays: dict[str, list[Obj]]) -> None:
    prod = overlays["production"]
    (monitor,) = find(prod, "ServiceMonitor")
    spec = monitor["spec"]
    assert "mapreduce" in spec["namespaceSelector"]["matchNames"]
    selected = [s for s in find(prod, "Service") if matches(spec["selector"], s["metadata"]["labels"])]
    assert sorted(s["metadata"]["name"] for s in selected) == ["mapper", "master", "reducer"]
    for endpoint in spec["endpoints"]:
        assert endpoint["path"] == "/metrics"
        for service in selected:
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    labels = _pod_labels(prod)
    (policy,) = [p for p in find(prod, "NetworkPolicy") if p["metadata"]["name"] == "allow-prometheus"]
    for role in ROLES:
        assert matches(policy["spec"]["podSelector"], labels[role])
    assert all(_port_ok(rule, "http", 8080) for rule in policy["spec"]["ingress"])


# ---------------------------------------------------------------- object storage (README "Object storage")


def test_dev_actors_read_object_store_keys_from_their_secret(overlays: dict[str, list[Obj]]) -> None:
    dev = overlays["dev"]
    secret = one(dev, "Secret", "s3-credentials")
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    read = settings_read()
    for w in workloads(dev):
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = env_value(w, name)["valueFrom"]["secretKeyRef"]  # from the Secret, never a literal
            assert ref == {"name": "s3-credentials", "key": name} and name in read
        env = container_env(declared_pods([w])[0], dev, "10.0.0.1")
        assert Settings.from_env(env).s3_endpoint.startswith("http://minio.")
    for o in dev:
        if o["kind"] == "ConfigMap":
            assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(o.get("data", {}))


def test_production_actors_use_the_irsa_service_account(overlays: dict[str, list[Obj]]) -> None:
    production = overlays["production"]
    account = one(production, "ServiceAccount", "mapreduce-actors")
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+",
                        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])
    assert account["automountServiceAccountToken"] is False
    for w in workloads(production):
        spec = pod_template(w)["spec"]
        assert spec["serviceAccountName"] == "mapreduce-actors" and spec["automountServiceAccountToken"] is False
    (policy,) = [p for p in find(production, "NetworkPolicy") if p["metadata"]["name"] == "allow-object-store-reducers"]
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
    assert not any(matches(policy["spec"]["podSelector"], pod_template(w)["metadata"]["labels"])
                   for w in workloads(production) if w["metadata"]["name"] != "reducer")
