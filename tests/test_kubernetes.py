"""deploy/kubernetes, checked without a cluster: rendered as `kubectl apply -k` would (kubectl's kustomize, or the same
steps in Python where kubectl is missing), every object validated offline against the Kubernetes API schemas, and the
settings a GPU sweep depends on asserted."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
# The oldest schemas kubernetes-validate ships and its newest: clusters with GPUs often lag a few releases behind.
SCHEMA_VERSIONS = ("1.25.0", "1.37.0")
# The kustomization features render_in_python implements; a new one must be added there (the test below says so).
PYTHON_KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions", "images"}


def render_with_kubectl() -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_in_python() -> list[dict]:
    """What `kubectl kustomize` makes of this kustomization.yaml: its resources, its ConfigMaps (fixed names), its
    image names."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert set(kustomization) <= PYTHON_KUSTOMIZE_KEYS, set(kustomization) - PYTHON_KUSTOMIZE_KEYS
    assert kustomization.get("generatorOptions") == {"disableNameSuffixHash": True}
    objects = []
    for generator in kustomization.get("configMapGenerator", []):
        data = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        for source in generator.get("files", []):
            key, _, path = source.rpartition("=")
            data[key or Path(path).name] = (DEPLOY / path).read_text()
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    for resource in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((DEPLOY / resource).read_text()) if doc]
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for pod in pod_specs(objects):
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name in images:
                image = images[name]
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
    return objects


def pod_specs(objects: list[dict]) -> list[dict]:
    return [obj["spec"]["template"]["spec"] for obj in objects if obj["kind"] in ("Deployment", "StatefulSet", "Job")]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict]:
    objects = render_with_kubectl() if shutil.which("kubectl") else render_in_python()
    by_name = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    assert len(by_name) == len(objects), "two objects of one kind share a name"
    return by_name


def containers(obj: dict) -> dict[str, dict]:
    spec = obj["spec"]["template"]["spec"]
    return {container["name"]: container for container in spec.get("initContainers", []) + spec["containers"]}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: nothing to compare with")
def test_the_python_rendering_is_what_kubectl_renders():
    key = lambda obj: (obj["kind"], obj["metadata"]["name"])  # noqa: E731
    assert sorted(render_in_python(), key=key) == sorted(render_with_kubectl(), key=key)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(rendered, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")

    assert {kind for kind, _ in rendered} == {"ConfigMap", "Service", "PersistentVolumeClaim", "StatefulSet", "Job",
                                              "Deployment", "NetworkPolicy"}
    for (kind, name), obj in rendered.items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)  # strict: an unknown (misspelt) field fails too
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{kind}/{name} against Kubernetes {version}: {error.message} at {list(error.path)}")


def test_workers_are_an_indexed_job_with_one_gpu_a_pod_and_time_to_stop_cleanly(rendered):
    from sweep.launcher import STOP_GRACE_SECONDS

    job = rendered["Job", "sweep-workers"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] >= 1
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    # SIGTERM to SIGKILL: a worker fails its trial and queues it again in seconds; as long as `sweep workers` allows.
    assert pod["terminationGracePeriodSeconds"] >= 2 * STOP_GRACE_SECONDS
    worker = containers(job)["worker"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["command"][:2] == ["sweep", "worker"] and "--until-done" in worker["command"]
    assert worker["command"][worker["command"].index("--device") + 1] == "cuda"
    index = worker["command"][worker["command"].index("--worker-index") + 1]
    assert index == "$(WORKER_INDEX)"
    assert {"name": "WORKER_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}} in worker["env"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in worker["volumeMounts"]


def test_the_study_job_creates_the_study_once_from_the_config_map(rendered):
    from sweep.config import build_config

    start = containers(rendered["Job", "sweep-study"])["start"]
    assert start["command"][:2] == ["sweep", "start"]
    assert start["command"][start["command"].index("--workers") + 1] == "0"
    config_file = start["command"][start["command"].index("--config") + 1]
    assert config_file == "/config/sweep.toml"
    config_map = rendered["ConfigMap", "sweep-config"]
    assert set(config_map["data"]) == {"sweep.toml"}
    # the file the Job reads is a valid sweep config
    config = build_config(DEPLOY / "sweep.toml")
    assert config.n_trials >= 1 and config.epochs >= 1


def _sweep_pods(rendered) -> dict[str, dict]:
    return {f"{kind}/{name}": obj for (kind, name), obj in rendered.items() if kind in ("Deployment", "Job")}


def test_the_password_comes_from_the_secret_and_is_written_nowhere(rendered):
    secret_ref = {"secretKeyRef": {"name": "sweep-postgres", "key": "password"}}
    postgres = containers(rendered["StatefulSet", "postgres"])["postgres"]
    assert {"name": "POSTGRES_PASSWORD", "valueFrom": secret_ref} in postgres["env"]
    for where, obj in _sweep_pods(rendered).items():
        for name, container in containers(obj).items():
            if container["image"].startswith("plateau-sweep"):
                assert {"name": "PGPASSWORD", "valueFrom": secret_ref} in container["env"], f"{where} {name}"
    settings = rendered["ConfigMap", "sweep-settings"]["data"]
    assert re.fullmatch(r"postgresql\+psycopg://sweep@postgres:5432/sweep", settings["SWEEP_STORAGE"])
    # no Secret object and no literal password in any file: the user creates the Secret (docs/distributed.md)
    assert not [key for key in rendered if key[0] == "Secret"]
    for path in DEPLOY.iterdir():
        text = path.read_text()
        assert not re.search(r"(?i)password\s*[:=]\s*[\"']?(?!\$)\w", text.replace("--from-literal=password=", "")), path


def test_probes_where_they_tell_something(rendered):
    postgres = containers(rendered["StatefulSet", "postgres"])["postgres"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert postgres[probe]["exec"]["command"][:3] == ["pg_isready", "-h", "127.0.0.1"], probe
    dashboard = containers(rendered["Deployment", "sweep-dashboard"])["dashboard"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert dashboard[probe]["httpGet"] == {"path": "/", "port": "http"}
    assert {"name": "http", "containerPort": 8080} in dashboard["ports"]


def test_postgres_keeps_its_data_on_a_claim_and_room_for_the_workers_connections(rendered):
    from sweep.storage import CONNECTIONS_PER_PROCESS

    statefulset = rendered["StatefulSet", "postgres"]
    assert statefulset["spec"]["replicas"] == 1
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/postgresql/data"} in \
        containers(statefulset)["postgres"]["volumeMounts"]
    args = containers(statefulset)["postgres"]["args"]
    max_connections = int(args[args.index("-c") + 1].split("=")[1])
    workers = rendered["Job", "sweep-workers"]["spec"]["parallelism"]
    assert max_connections >= CONNECTIONS_PER_PROCESS * workers + 10


def test_the_dashboard_is_reached_only_through_the_cluster(rendered):
    service = rendered["Service", "sweep-dashboard"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == rendered["Deployment", "sweep-dashboard"]["spec"]["selector"]["matchLabels"]
    command = containers(rendered["Deployment", "sweep-dashboard"])["dashboard"]["command"]
    assert command[:2] == ["sweep", "dashboard"] and command[command.index("--host") + 1] == "0.0.0.0"
    assert not [obj for (kind, _), obj in rendered.items() if kind == "Ingress"]
    assert not [obj for (kind, _), obj in rendered.items()
                if kind == "Service" and obj["spec"].get("type") in ("NodePort", "LoadBalancer")]


def test_every_sweep_pod_runs_as_the_images_user_and_shares_the_checkpoint_volume(rendered):
    uid = re.search(r"useradd .*--uid (\d+) sweep", (ROOT / "Dockerfile").read_text())
    assert uid, "the Dockerfile's user has no fixed uid"
    artifacts = rendered["ConfigMap", "sweep-settings"]["data"]["SWEEP_ARTIFACTS"]
    for where, obj in _sweep_pods(rendered).items():
        security = obj["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == int(uid.group(1)), where
    for name in ("sweep-study", "sweep-workers"):
        main_container = list(containers(rendered["Job", name]).values())[-1]
        mounts = [mount["mountPath"] for mount in main_container["volumeMounts"]]
        assert any(artifacts.startswith(mount + "/") for mount in mounts), (name, mounts)
    claim = rendered["PersistentVolumeClaim", "sweep-shared"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # pods of one sweep run on many nodes


# Pod Security Standards, "restricted" profile (kubernetes.io/docs/concepts/security/pod-security-standards), as
# the admission controller applies it from Kubernetes 1.25: no checker ships offline, so its published rules here.
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(pod: dict) -> list[str]:
    """What the "restricted" Pod Security profile refuses in a pod spec (baseline rules included), one line each."""
    found = []
    pod_security = pod.get("securityContext", {})
    all_containers = pod.get("initContainers", []) + pod["containers"] + pod.get("ephemeralContainers", [])
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"{field}: true")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: type {sorted(kinds - RESTRICTED_VOLUME_TYPES)} not allowed")
    for sysctl in pod_security.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']}")
    for where, context in [("pod", pod_security)] + [(c["name"], c.get("securityContext", {})) for c in all_containers]:
        if context.get("windowsOptions", {}).get("hostProcess"):
            found.append(f"{where}: hostProcess")
        if context.get("runAsUser") == 0:
            found.append(f"{where}: runAsUser 0")
        if context.get("runAsNonRoot") is False:
            found.append(f"{where}: runAsNonRoot false")
        selinux = context.get("seLinuxOptions", {})
        if selinux.get("type") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            found.append(f"{where}: seLinuxOptions {selinux}")
        if context.get("seccompProfile", {}).get("type") == "Unconfined":
            found.append(f"{where}: seccompProfile Unconfined")
        if context.get("appArmorProfile", {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"{where}: appArmorProfile {context['appArmorProfile']}")
    for container in all_containers:
        name, context = container["name"], container.get("securityContext", {})
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {capabilities['add']}")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount {context['procMount']}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
        if pod_security.get("runAsNonRoot") is not True and context.get("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot not set")
        seccomp = context.get("seccompProfile", pod_security.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp or 'not set'}")
    return found


def test_every_pod_passes_the_restricted_pod_security_profile(rendered):
    for (kind, name), obj in rendered.items():
        if kind in ("Deployment", "StatefulSet", "Job"):
            assert restricted_violations(obj["spec"]["template"]["spec"]) == [], f"{kind}/{name}"


def test_the_restricted_checker_refuses_what_the_profile_refuses(rendered):
    import copy

    pod = copy.deepcopy(rendered["Job", "sweep-workers"]["spec"]["template"]["spec"])
    pod["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["containers"][0]["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    pod["containers"][0]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["hostNetwork"] = True
    del pod["securityContext"]["runAsNonRoot"]
    assert sorted(restricted_violations(pod)) == sorted([
        "hostNetwork: true", "volume host: type ['hostPath'] not allowed", "worker: seccompProfile Unconfined",
        "wait-for-study: allowPrivilegeEscalation is not false", "worker: adds capabilities ['SYS_ADMIN']",
        "wait-for-study: runAsNonRoot not set", "worker: runAsNonRoot not set", "worker: seccompProfile Unconfined"])


def test_every_container_has_a_read_only_root_resources_and_a_pinned_image(rendered):
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    for (kind, name), obj in rendered.items():
        if kind not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container_name, container in containers(obj).items():
            where = f"{kind}/{name} {container_name}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"], where
            image, _, tag = container["image"].rpartition(":")
            assert re.fullmatch(r"\d+(\.\d+)+", tag), f"{where}: image {container['image']} is not pinned to a version"
            if image.endswith("plateau-sweep"):
                assert tag == version, where  # the image built from this checkout
                # what the sweep writes besides its stores: HOME (torch and Hugging Face caches) and /tmp
                mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
                assert {"/home/sweep", "/tmp"} <= mounts, where
    postgres = containers(rendered["StatefulSet", "postgres"])["postgres"]
    assert {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"} <= \
        {mount["mountPath"] for mount in postgres["volumeMounts"]}
    assert rendered["StatefulSet", "postgres"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 999


def test_the_dashboard_and_the_study_job_mount_what_they_use(rendered):
    artifacts = rendered["ConfigMap", "sweep-settings"]["data"]["SWEEP_ARTIFACTS"]
    for kind, name, container in (("Deployment", "sweep-dashboard", "dashboard"), ("Job", "sweep-study", "start"),
                                  ("Job", "sweep-workers", "worker")):
        obj = rendered[kind, name]
        mounts = {mount["mountPath"]: mount for mount in containers(obj)[container]["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in obj["spec"]["template"]["spec"]["volumes"]}
        store = [mount for path, mount in mounts.items() if artifacts.startswith(path + "/")]
        assert store and not store[0].get("readOnly"), f"{name}: SWEEP_ARTIFACTS={artifacts} is not mounted"
        assert volumes[store[0]["name"]]["persistentVolumeClaim"]["claimName"] == "sweep-shared", name
        if kind == "Job":  # PyTorch's data loaders: the study Job runs the doctor's training checks too
            assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"]["medium"] == "Memory", name


def _admitted(rendered, source_labels: dict, source_namespace: dict | None, target: str, port) -> bool:
    """Whether the rendered NetworkPolicies let a pod with ``source_labels`` reach ``target``'s pods on ``port``;
    ``source_namespace`` is the labels of the source's namespace, or None for the sweep's own (unlabelled) one."""
    pod = rendered[target]["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    named_ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    matches = lambda selector, labels: all(labels.get(k) == v for k, v in selector["matchLabels"].items())  # noqa: E731
    policies = [obj["spec"] for (kind, _), obj in rendered.items() if kind == "NetworkPolicy"
                and "Ingress" in obj["spec"]["policyTypes"] and matches(obj["spec"]["podSelector"], pod_labels)]
    if not policies:
        return True
    for rule in (rule for policy in policies for rule in policy.get("ingress", [])):
        ports = [named_ports.get(p["port"], p["port"]) for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        for peer in rule.get("from", []):
            assert set(peer) <= {"podSelector", "namespaceSelector"} and \
                all(set(selector) == {"matchLabels"} for selector in peer.values()), peer
            if "namespaceSelector" in peer:
                namespace_ok = source_namespace is not None and matches(peer["namespaceSelector"], source_namespace)
            else:
                namespace_ok = source_namespace is None
            if namespace_ok and ("podSelector" not in peer or matches(peer["podSelector"], source_labels)):
                return True
    return False


def test_the_network_policies_admit_what_the_guide_says(rendered):
    dashboard, postgres = ("Deployment", "sweep-dashboard"), ("StatefulSet", "postgres")
    worker = rendered["Job", "sweep-workers"]["spec"]["template"]["metadata"]["labels"]
    dashboard_pod = rendered[dashboard]["spec"]["template"]["metadata"]["labels"]
    labelled = {"kubernetes.io/metadata.name": "tools", "plateau-sweep/dashboard-access": "true"}
    other = {"kubernetes.io/metadata.name": "tools"}
    # the dashboard: only pods of a labelled namespace, only on its port; not even the sweep's own pods
    assert _admitted(rendered, {}, labelled, dashboard, 8080)
    assert not _admitted(rendered, {}, labelled, dashboard, 5432)
    assert not _admitted(rendered, worker, None, dashboard, 8080)
    assert not _admitted(rendered, {"app": "anything"}, None, dashboard, 8080)
    assert not _admitted(rendered, {}, other, dashboard, 8080)
    # PostgreSQL: the sweep's pods, the dashboard among them; nothing else
    assert _admitted(rendered, worker, None, postgres, 5432)
    assert _admitted(rendered, dashboard_pod, None, postgres, 5432)
    assert not _admitted(rendered, {"app": "anything"}, None, postgres, 5432)
    assert not _admitted(rendered, worker, labelled, postgres, 5432)
    guide = (ROOT / "docs" / "distributed.md").read_text()
    assert "kubectl label namespace" in guide and "plateau-sweep/dashboard-access=true" in guide
