"""The deployment files under deploy/ are consistent with each other and with the code.

Kubernetes documents are validated against the API schemas of a pinned Kubernetes version in
strict mode (unknown fields fail); the rest checks what a schema cannot: the data plane's
probes and shutdown timing, selectors that really select, references to ConfigMaps, Secrets,
services, volumes and files that exist, and alert and dashboard queries that name metrics the
data plane exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package ships no type hints
import pytest
import yaml

from control_plane.grpc_api.metrics import ControlPlaneMetrics
from data_plane.metrics import Metrics
from data_plane.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
# The oldest Kubernetes minor the manifests must apply to (kubernetes-validate ships 1.25+).
KUBERNETES_VERSION = "1.33"
DATA_PLANE = "asc-data-plane"

Doc = dict[str, Any]


def _load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


def _manifest_paths() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def _documents_of(path: Path) -> tuple[Doc, ...]:
    with path.open() as f:
        return tuple(doc for doc in yaml.safe_load_all(f) if doc is not None)


def _documents() -> list[Doc]:
    return [doc for path in _manifest_paths() for doc in _documents_of(path)]


def _of_kind(kind: str) -> list[Doc]:
    return [doc for doc in _documents() if doc["kind"] == kind]


def _named(kind: str, name: str) -> Doc:
    found = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def _pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def _pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def _containers(workload: Doc) -> list[Doc]:
    spec = _pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _env(container: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in container.get("env", [])}


def _data_plane() -> tuple[Doc, Doc]:
    deployment = _named("Deployment", DATA_PLANE)
    containers = _pod_spec(deployment)["containers"]
    assert len(containers) == 1, "the data-plane pod runs one container"
    return deployment, containers[0]


def _is_subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _container_port(container: Doc, port: int | str) -> int | None:
    for entry in container.get("ports", []):
        if port in (entry.get("name"), entry["containerPort"]):
            return int(entry["containerPort"])
    return None


# ---- Kubernetes: schema ------------------------------------------------------------------


@pytest.mark.parametrize("path", _manifest_paths(), ids=lambda p: p.name)
def test_kubernetes_documents_match_the_api_schema(path: Path) -> None:
    documents = _documents_of(path)
    assert documents, f"{path.name} holds no document"
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc.get('kind')} {doc['metadata'].get('name')}: {exc}")


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _load_yaml(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == [p.name for p in _manifest_paths()]


def test_namespaced_documents_are_in_the_asc_namespace() -> None:
    namespace = _load_yaml(K8S / "kustomization.yaml")["namespace"]
    assert [doc["metadata"]["name"] for doc in _of_kind("Namespace")] == [namespace]
    for doc in _documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


def test_no_document_is_declared_twice() -> None:
    keys = [(doc["kind"], doc["metadata"]["name"]) for doc in _documents()]
    assert len(keys) == len(set(keys))


# ---- Kubernetes: the data plane ----------------------------------------------------------


def test_data_plane_probes_readyz_and_healthz_on_its_port() -> None:
    _, container = _data_plane()
    port = int(_env(container)["ASC_DP_PORT"]["value"])
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    for probe in (readiness, liveness):
        assert _container_port(container, probe["port"]) == port


def _pre_stop_sleep_s(container: Doc) -> int:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep", f"preStop should wait for endpoint removal: {command}"
    return int(command[1])


def test_data_plane_shutdown_fits_in_the_grace_period() -> None:
    deployment, container = _data_plane()
    grace = _pod_spec(deployment)["terminationGracePeriodSeconds"]
    pre_stop = _pre_stop_sleep_s(container)
    assert pre_stop >= 3, "give the endpoints controller and load balancers time to react"
    assert grace >= 40
    # preStop runs first, then SIGTERM starts the drain of in-flight requests.
    assert grace > pre_stop + Settings().shutdown_timeout_s


def test_data_plane_node_id_is_the_pod_name() -> None:
    _, container = _data_plane()
    field_ref = _env(container)["ASC_NODE_ID"]["valueFrom"]["fieldRef"]
    assert field_ref["fieldPath"] == "metadata.name"


def test_data_plane_runs_non_root_on_a_read_only_root_with_a_writable_state_dir() -> None:
    deployment, container = _data_plane()
    pod = _pod_spec(deployment)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True
    state_dir = _env(container)["ASC_DP_STATE_DIR"]["value"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert state_dir in mounts, "ASC_DP_STATE_DIR must be a mounted volume"
    assert not mounts[state_dir].get("readOnly", False)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[state_dir]["name"]]


def test_data_plane_gets_only_the_seal_key_from_the_secret() -> None:
    _, container = _data_plane()
    assert "envFrom" not in container
    secret_keys = {
        item["valueFrom"]["secretKeyRef"]["key"]
        for item in container["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert secret_keys == {"ASC_SEAL_KEY"}


def test_data_plane_is_scraped_on_its_metrics_port() -> None:
    deployment, container = _data_plane()
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    port = int(annotations["prometheus.io/port"])
    assert _container_port(container, port) == int(_env(container)["ASC_DP_PORT"]["value"])


def test_data_plane_requests_cpu_for_the_autoscaler() -> None:
    _, container = _data_plane()
    resources = container["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_autoscaler_and_disruption_budget_target_the_data_plane() -> None:
    deployment, _ = _data_plane()
    labels = _pod_labels(deployment)
    hpas = [
        hpa
        for hpa in _of_kind("HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        and hpa["spec"]["scaleTargetRef"]["name"] == DATA_PLANE
    ]
    assert len(hpas) == 1
    hpa = hpas[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["apiVersion"] == deployment["apiVersion"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    assert any(
        metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
        for metric in hpa["spec"]["metrics"]
    )
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"

    pdbs = [
        pdb
        for pdb in _of_kind("PodDisruptionBudget")
        if _is_subset(pdb["spec"]["selector"]["matchLabels"], labels)
    ]
    assert len(pdbs) == 1
    pdb = pdbs[0]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    if "minAvailable" in pdb["spec"]:
        assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "drains must progress"


# ---- Kubernetes: every workload ----------------------------------------------------------


def test_deployment_selectors_match_their_pod_labels() -> None:
    for deployment in _of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert _is_subset(selector, _pod_labels(deployment)), deployment["metadata"]["name"]


def test_every_service_selects_a_deployment_port() -> None:
    deployments = _of_kind("Deployment")
    assert _of_kind("Service")
    for service in _of_kind("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"].get("selector", {})
        targets = [d for d in deployments if _is_subset(selector, _pod_labels(d))]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} Deployments"
        containers = _pod_spec(targets[0])["containers"]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert any(_container_port(c, target) for c in containers), f"{name}: {target}"


def test_beat_runs_exactly_once() -> None:
    beat = _named("Deployment", "asc-cp-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def _workloads() -> list[Doc]:
    return [*_of_kind("Deployment"), *_of_kind("Job")]


def test_every_container_runs_unprivileged_on_a_read_only_root() -> None:
    for workload in _workloads():
        pod_security = _pod_spec(workload).get("securityContext", {})
        for container in _containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            security = container.get("securityContext", {})
            non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
            assert non_root is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where


def _references(container: Doc) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None for a whole-object reference) of each config reference."""
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            yield "ConfigMap", source["configMapRef"]["name"], None
        if "secretRef" in source:
            yield "Secret", source["secretRef"]["name"], None
    for item in container.get("env", []):
        value_from = item.get("valueFrom", {})
        if "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            yield "ConfigMap", ref["name"], ref["key"]
        if "secretKeyRef" in value_from:
            ref = value_from["secretKeyRef"]
            yield "Secret", ref["name"], ref["key"]


def test_config_map_and_secret_references_exist() -> None:
    references = 0
    for workload in _workloads():
        for container in _containers(workload):
            for kind, name, key in _references(container):
                references += 1
                doc = _named(kind, name)
                keys = {**doc.get("data", {}), **doc.get("stringData", {})}
                assert key is None or key in keys, f"{kind} {name} has no key {key}"
    assert references


def _required_control_plane_settings() -> set[str]:
    """Variables control_plane/settings.py documents as required, plus DATABASE_URL (without
    it the control plane falls back to SQLite, which is for development only)."""
    table = (REPO / "control_plane" / "settings.py").read_text()
    required = set(re.findall(r"^\| (\w+) \| required", table, flags=re.MULTILINE))
    assert required, "the settings docstring table lists the required variables"
    return required | {"DATABASE_URL"}


def test_control_plane_containers_get_every_setting_they_require() -> None:
    secret = _named("Secret", "asc-secrets")["stringData"]
    config = _named("ConfigMap", "asc-config")["data"]
    missing = _required_control_plane_settings() - secret.keys() - config.keys()
    assert not missing, f"neither the Secret nor the ConfigMap sets {missing}"
    assert {"ASC_ALLOWED_HOSTS", "CELERY_BROKER_URL"} <= config.keys()
    for workload in _workloads():
        if workload["metadata"]["name"] == DATA_PLANE:
            continue
        for container in _containers(workload):
            sources = {(kind, name) for kind, name, key in _references(container) if key is None}
            assert {("Secret", "asc-secrets"), ("ConfigMap", "asc-config")} <= sources


def test_compose_control_plane_services_get_every_setting_they_require() -> None:
    data_planes = _compose_data_planes()
    control_plane = {
        name: s for name, s in _services().items() if "build" in s and name not in data_planes
    }
    assert {"cp-migrate", "cp-web", "cp-grpc", "cp-worker", "cp-beat"} <= control_plane.keys()
    for name, service in control_plane.items():
        missing = _required_control_plane_settings() - _environment(service).keys()
        assert not missing, f"{name} lacks {missing}"


def test_web_probes_send_an_allowed_host() -> None:
    allowed = _named("ConfigMap", "asc-config")["data"]["ASC_ALLOWED_HOSTS"].split(",")
    web = _named("Deployment", "asc-cp-web")
    container = _pod_spec(web)["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        headers = {
            h["name"].lower(): h["value"] for h in container[probe]["httpGet"]["httpHeaders"]
        }
        assert headers["host"] in allowed, f"{probe}: Django answers 400 to other hosts"


def test_data_plane_dials_the_grpc_service() -> None:
    address = _named("ConfigMap", "asc-config")["data"]["ASC_CONTROL_PLANE"]
    host, _, port = address.rpartition(":")
    service = _named("Service", host.split(".")[0])
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]


# ---- Compose -----------------------------------------------------------------------------


@cache
def _compose() -> Doc:
    compose: Doc = _load_yaml(DEPLOY / "compose.yaml")
    return compose


def _services() -> dict[str, Doc]:
    services: dict[str, Doc] = _compose()["services"]
    return services


def _environment(service: Doc) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _compose_data_planes() -> dict[str, Doc]:
    return {
        name: service
        for name, service in _services().items()
        if service.get("command") == ["python", "-m", "data_plane"]
    }


def test_compose_depends_on_names_existing_services() -> None:
    services = _services()
    assert services
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert dependency != name


def test_compose_data_planes_have_distinct_node_ids_and_state_volumes() -> None:
    data_planes = _compose_data_planes()
    assert len(data_planes) >= 3
    node_ids = [_environment(s).get("ASC_NODE_ID", "") for s in data_planes.values()]
    assert all(node_ids)
    assert len(set(node_ids)) == len(node_ids)
    state_volumes = []
    for service in data_planes.values():
        state_dir = _environment(service)["ASC_DP_STATE_DIR"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        state_volumes.append(mounts[state_dir])
    assert len(set(state_volumes)) == len(state_volumes)


def test_compose_volumes_and_mounted_files_exist() -> None:
    declared = set(_compose().get("volumes", {}))
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_required_variables_are_in_the_env_example() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+)(?::?\?[^}]*)?\}", text))
    assert required, "compose takes its secrets from the env file"
    example = (DEPLOY / "asc.env.example").read_text()
    listed = set(re.findall(r"^(\w+)=", example, flags=re.MULTILINE))
    assert required <= listed, f"missing from asc.env.example: {required - listed}"


def test_compose_builds_the_image_from_the_repository_root() -> None:
    for name, service in _services().items():
        build = service.get("build")
        if build is not None:
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
            assert (context / "pyproject.toml").is_file(), name


def test_load_balancer_and_prometheus_reach_every_data_plane() -> None:
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    upstreams = set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", nginx, flags=re.MULTILINE))
    prometheus = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "asc-data-plane"]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    for name, service in _compose_data_planes().items():
        address = f"{name}:{_environment(service)['ASC_DP_PORT']}"
        assert address in upstreams, f"nginx does not balance to {address}"
        assert address in targets, f"Prometheus does not scrape {address}"
    assert set(_compose()["services"]["lb"]["depends_on"]) == set(_compose_data_planes())


def _mount_target(service: str, source: str) -> str:
    """Where compose service ``service`` mounts the deploy/-relative path ``source``."""
    volume: str
    for volume in _services()[service]["volumes"]:
        parts = volume.split(":")
        if (DEPLOY / parts[0]).resolve() == (DEPLOY / source).resolve():
            return parts[1]
    raise AssertionError(f"{service} does not mount {source}")


def test_compose_mounts_the_files_where_their_configuration_expects_them() -> None:
    prometheus = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    for rule_file in prometheus["rule_files"]:
        source = f"./prometheus/{Path(rule_file).name}"
        assert _mount_target("prometheus", source) == rule_file
    providers = DEPLOY / "grafana" / "provisioning" / "dashboards" / "asc.yml"
    for provider in _load_yaml(providers)["providers"]:
        assert _mount_target("grafana", "./grafana/dashboards") == provider["options"]["path"]
    assert _mount_target("grafana", "./grafana/provisioning") == "/etc/grafana/provisioning"


# ---- Prometheus and Grafana --------------------------------------------------------------


@cache
def _exported_metrics() -> frozenset[str]:
    """Sample names both planes expose, as Prometheus sees them."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    registries = (Metrics().registry, ControlPlaneMetrics().registry)
    return frozenset(
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in suffixes[family.type]
    )


def _unknown_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\basc_\w+", expr)) - _exported_metrics()


def _alert_rules() -> list[Doc]:
    config = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    rules: list[Doc] = []
    for rule_file in config["rule_files"]:
        path = DEPLOY / "prometheus" / Path(rule_file).name
        for group in _load_yaml(path)["groups"]:
            rules.extend(group["rules"])
    return rules


def test_alert_rules_have_expr_severity_and_summary() -> None:
    rules = _alert_rules()
    assert rules
    for rule in rules:
        name = rule.get("alert") or rule.get("record")
        assert isinstance(rule.get("expr"), str), name
        assert rule["expr"].strip(), name
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
            assert rule["annotations"]["summary"].strip(), name
    names = [rule["alert"] for rule in rules if "alert" in rule]
    assert len(names) == len(set(names))


def test_alerts_cover_the_failure_modes_of_a_data_plane() -> None:
    text = " ".join(rule["expr"] for rule in _alert_rules())
    for needle in (
        'up{job="asc-data-plane"}',  # a data plane is down
        "asc_dp_snapshot_version == 0",  # no snapshot: /readyz failing
        "group_right",  # snapshot version lag across nodes
        'status=~"5.."',  # 5xx rate
        "histogram_quantile(0.99",  # p99 latency
        "asc_dp_usage_spool_depth",  # usage spool growing
    ):
        assert needle in text, needle


def test_alert_rules_use_only_exported_metrics() -> None:
    for rule in _alert_rules():
        assert not _unknown_metrics(rule["expr"]), rule.get("alert")


def _panels(container: Doc) -> Iterator[Doc]:
    for panel in container.get("panels", []):
        if panel.get("type") == "row":
            yield from _panels(panel)
        else:
            yield panel


def test_dashboard_panels_query_exported_metrics_on_the_provisioned_datasource() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "asc.json").read_text())
    provisioning = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    datasource_uids = {ds["uid"] for ds in _load_yaml(provisioning)["datasources"]}
    panels = list(_panels(dashboard))
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        title = panel["title"]
        assert panel.get("targets"), f"panel {title!r} has no targets"
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert not _unknown_metrics(target["expr"]), title
            uid = target.get("datasource", panel.get("datasource", {})).get("uid")
            assert uid in datasource_uids, title


def test_dashboard_shows_what_operators_need() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "asc.json").read_text())
    used = {
        metric
        for panel in _panels(dashboard)
        for target in panel["targets"]
        for metric in re.findall(r"\basc_\w+", target["expr"])
    }
    for metric in (
        "asc_dp_requests_total",
        "asc_dp_request_seconds_bucket",
        "asc_dp_time_to_first_token_seconds_bucket",
        "asc_dp_tokens_total",
        "asc_dp_fallbacks_total",
        "asc_dp_denials_total",
        "asc_dp_snapshot_version",
    ):
        assert metric in used, metric


# ---- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_installs_the_package_without_dev_extras_and_runs_as_non_root() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "[dev]" not in " ".join(lines)
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users, "the runtime stage must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"COPY source {source} is not in the repo"
