"""Kubernetes, KServe and Seldon manifests from the registry's state: ``mlgate export``.

The registry stays the source of truth: ``promote``, ``traffic`` and ``rollout`` change it, and
``export`` turns one read of it (champion, challenger, traffic mode and weight, the images
``mlgate build`` recorded, the versions' artifact locations) into manifests. Rendering is pure
and deterministic (no timestamps, a fixed key order), so the same registry state gives
byte-identical YAML and a GitOps repository (Argo CD, Flux) sees only real changes.

Targets:

- ``k8s``: a Deployment running ``mlgate serve MODEL`` in the champion's image, so every
  replica follows the registry (one ``mlgate traffic`` reaches all within a poll), with a
  Service, a HorizontalPodAutoscaler and a PodDisruptionBudget; or, ``pinned``, one Deployment
  and Service per served version, each running the model baked into its image.
- ``kserve``: a ``serving.kserve.io/v1beta1`` InferenceService (KServe 0.11 and later). ``image``
  mode runs the version's mlgate image; ``native`` mode lets KServe's MLflow runtime (MLServer,
  protocol v2) load the version's artifacts from their real storage URI. A challenger with a
  weight is the canary (``canaryTrafficPercent``), which needs KServe's Knative deployment mode:
  every InferenceService mlgate writes carries that mode from the first deploy on (KServe's
  webhook refuses a change of mode after creation), as ``Knative`` (KServe 0.16 and later) or
  ``Serverless`` (its name before 0.16). ``stage="champion"`` renders the champion alone, the
  revision a canary needs rolled out first.
- ``seldon``: Seldon Core v2 ``Model`` resources named by role (the champion's Model keeps the
  model's name across promotions and rollbacks: its ``storageUri`` changes, a rolling update)
  and, while the challenger has traffic, an ``Experiment`` whose ``default`` is that Model, so
  it takes over the Model's endpoint with the weights (shadow mode: a ``mirror``).

Only what the platform reads changes with a traffic weight: ``canaryTrafficPercent`` or the
Experiment's candidates. No annotation carries it (KServe copies an InferenceService's
annotations into the Knative revision template, so a changing one would restart the pods; the
``k8s`` replicas read the weight from the registry, so the manifests do not change at all).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from mlgate.errors import UsageError
from mlgate.keys import Tags
from mlgate.registry.store import Store

TARGETS = ("k8s", "kserve", "seldon")
KSERVE_MODES = ("image", "native")
#: KServe's name of the deployment mode with Knative revisions and ``canaryTrafficPercent``:
#: ``Knative`` from KServe 0.16 (which renamed Serverless to Knative and RawDeployment to
#: Standard, its new default), ``Serverless`` before.
KSERVE_DEPLOYMENT_MODES = ("Knative", "Serverless")
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
#: ``stage``: the champion alone (what a canary needs rolled out first), or the canary.
STAGES = ("champion", "canary")
#: Storage URI schemes KServe's storage initializer (and Seldon's rclone) can read.
STORAGE_SCHEMES = (
    "s3://",
    "gs://",
    "hdfs://",
    "webhdfs://",
    "https://",
    "http://",
    "pvc://",
    "hf://",
    "oci://",
    "az://",
)
PORT = 8080
#: The non-root user of an mlgate image (mlgate.deploy.recipe.UID).
UID = 10001
#: The pod's writable scratch (an emptyDir): a path inside the container, not on this host.
TMP = "/tmp"  # noqa: S108
#: Inside a pod the Service is the only way in, so the server listens on every interface.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@dataclass(frozen=True)
class Served:
    """One served version: its role, number, recorded image and real artifact location."""

    role: str
    version: str
    image: str | None
    artifacts: str | None


@dataclass(frozen=True)
class Snapshot:
    """What the registry says serves, read once."""

    model: str
    champion: Served
    challenger: Served | None
    mode: str  # split | shadow
    weight: float  # the challenger's percent

    @property
    def serving(self) -> tuple[Served, ...]:
        return (self.champion,) if self.challenger is None else (self.champion, self.challenger)


@dataclass(frozen=True)
class ExportOptions:
    """How the manifests are shaped. Every field has a documented default."""

    namespace: str = "default"
    name: str | None = None  # resource name; default: the model name made DNS-safe
    replicas: int = 2
    max_replicas: int = 5
    cpu: str = "250m"
    memory: str = "512Mi"
    cpu_limit: str | None = "1"
    memory_limit: str = "1Gi"
    image: str | None = None  # the image for k8s follow mode (default: the champion's)
    image_repository: str | None = None  # rewrites the repository of recorded image refs
    service_account: str | None = None
    tracking_secret: str = "mlflow-tracking"  # noqa: S105 - the Secret's name, not a secret
    pinned: bool = False  # k8s: one Deployment per version instead of following the registry
    mode: str = "image"  # kserve: "image" (the mlgate image) or "native" (KServe's runtime)
    deployment_mode: str = "Knative"  # kserve: KSERVE_DEPLOYMENT_MODES (Serverless: KServe < 0.16)
    stage: str | None = None  # kserve: STAGES; None: what the registry says (champion + canary)
    storage_map: tuple[tuple[str, str], ...] = ()
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"


@dataclass(frozen=True)
class Export:
    """The rendered manifests: parsed documents and their YAML."""

    target: str
    snapshot: Snapshot
    documents: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]

    def yaml(self) -> str:
        return to_yaml(self.documents)

    def write(self, directory: str | Path) -> tuple[list[Path], list[Path]]:
        """One file per document, ``<kind>-<name>.yaml``, in ``directory`` (created).

        A file an earlier export of the same model wrote there that this state no longer needs
        (e.g. the Model of a challenger that is gone) is removed, so the directory is exactly
        the registry's state; files that are not mlgate's exports of this model are left alone.
        Returns (written, removed).
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for doc in self.documents:
            path = out / f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
            path.write_text(to_yaml([doc]), encoding="utf-8")
            written.append(path)
        removed = [p for p in sorted(out.glob("*.yaml")) if p not in written and self._ours(p)]
        for path in removed:
            path.unlink()
        return written, removed

    def _ours(self, path: Path) -> bool:
        import yaml  # type: ignore[import-untyped]

        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            meta = doc["metadata"]
            return bool(
                meta["labels"]["app.kubernetes.io/managed-by"] == "mlgate"
                and meta["annotations"]["mlgate.io/model"] == self.snapshot.model
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            return False


def to_yaml(documents: Sequence[dict[str, Any]]) -> str:
    """Deterministic multi-document YAML (key order as built, never sorted or timestamped)."""
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:  # shared dicts: written out, no &id001
            return True

    return str(
        yaml.dump_all(list(documents), Dumper=Dumper, sort_keys=False, default_flow_style=False)
    )


# --------------------------------------------------------------------------- reading
def read_snapshot(store: Store, model: str, options: ExportOptions, *, artifacts: bool) -> Snapshot:
    """One read of the registry: aliases, traffic, and each served version's image/artifacts."""
    import json

    from mlgate.serving.routing import TRAFFIC_TAG, parse_traffic

    info = store.get_model(model)
    champion = info.aliases.get(options.champion_alias)
    if champion is None:
        raise UsageError(
            f"{model} has no {options.champion_alias} (@{options.champion_alias} is not set): "
            "nothing to export",
            hint=f"promote a version first: mlgate promote {model}/N --to {options.champion_alias}",
        )
    challenger = info.aliases.get(options.challenger_alias)

    def served(role: str, version: str) -> Served:
        v = store.get_version(model, version)
        image = None
        raw = v.tags.get(Tags.IMAGE)
        if raw:
            try:
                image = _image_ref(json.loads(raw))
            except (ValueError, TypeError, AttributeError):
                image = None
        location = store.artifact_location(model, version) if artifacts else None
        return Served(role=role, version=version, image=image, artifacts=location)

    traffic = parse_traffic(info.tags.get(TRAFFIC_TAG))
    return Snapshot(
        model=model,
        champion=served("champion", champion),
        challenger=served("challenger", challenger)
        if challenger and challenger != champion
        else None,
        mode=traffic.mode,
        weight=traffic.challenger_weight,
    )


def _image_ref(record: dict[str, Any]) -> str | None:
    image = record.get("image")
    if not isinstance(image, str) or not image:
        return None
    digest = record.get("digest")
    return (
        f"{image}@{digest}" if isinstance(digest, str) and digest.startswith("sha256:") else image
    )


def export(
    target: str,
    model: str,
    *,
    options: ExportOptions | None = None,
    store: Store | None = None,
) -> Export:
    """Read the registry once and render ``target``'s manifests for ``model``.

    Raises:
        UsageError: an unknown target or option, no champion, a version without the image or
            storage location the target needs, a weight the target cannot express.
        NotFoundError: the model does not exist.
    """
    opts = options or ExportOptions()
    if target not in TARGETS:
        raise UsageError(
            f"unknown export target {target!r}", hint=f"use one of {', '.join(TARGETS)}"
        )
    _check_options(opts)
    store = store or Store()
    needs_artifacts = target == "seldon" or (target == "kserve" and opts.mode == "native")
    snap = read_snapshot(store, model, opts, artifacts=needs_artifacts)
    return render(target, snap, opts)


def render(target: str, snap: Snapshot, options: ExportOptions) -> Export:
    """Pure: the manifests of ``target`` for a snapshot."""
    if options.stage is not None and target != "kserve":
        raise UsageError(
            f"--stage is for kserve, whose canary needs the champion rolled out first; "
            f"{target} manifests are applied in one step"
        )
    renderers = {"k8s": _k8s, "kserve": _kserve, "seldon": _seldon}
    docs, notes = renderers[target](snap, options)
    for image in sorted(set(_images(docs))):
        if "@sha256:" not in image:
            notes.append(
                f"image {image} has no registry digest recorded (built without --push?): the "
                "cluster pulls it by tag, so it must be in a registry it can reach"
            )
    return Export(target=target, snapshot=snap, documents=tuple(docs), notes=tuple(notes))


def _images(value: Any) -> list[str]:
    """Every container image named anywhere in the documents."""
    if isinstance(value, dict):
        found = [value["image"]] if isinstance(value.get("image"), str) else []
        return found + [i for v in value.values() for i in _images(v)]
    if isinstance(value, list):
        return [i for v in value for i in _images(v)]
    return []


def _check_options(o: ExportOptions) -> None:
    if o.mode not in KSERVE_MODES:
        raise UsageError(f"KServe mode must be one of {', '.join(KSERVE_MODES)}, got {o.mode!r}")
    if o.deployment_mode not in KSERVE_DEPLOYMENT_MODES:
        raise UsageError(
            f"KServe deployment mode must be one of {', '.join(KSERVE_DEPLOYMENT_MODES)} (the "
            f"mode with canary traffic), got {o.deployment_mode!r}"
        )
    if o.stage is not None and o.stage not in STAGES:
        raise UsageError(f"stage must be one of {', '.join(STAGES)}, got {o.stage!r}")
    _check_resources(o)
    if o.replicas < 1 or o.max_replicas < o.replicas:
        raise UsageError(
            f"replicas {o.replicas}..{o.max_replicas}: need 1 <= replicas <= max replicas"
        )
    for what, value in (
        ("namespace", o.namespace),
        ("name", o.name),
        ("service account", o.service_account),
        ("tracking secret", o.tracking_secret),
    ):
        if value is not None and not _DNS.fullmatch(value):
            raise UsageError(
                f"{what} {value!r} is not a valid Kubernetes name",
                hint="lowercase letters, digits and '-', at most 63 characters",
            )


#: A Kubernetes resource quantity (k8s.io/apimachinery/pkg/api/resource, ParseQuantity): a
#: decimal number, then a binary-SI suffix (Ki..Ei), a decimal-SI one (n u m k M G T P E) or a
#: decimal exponent (e3, E-2). Resources must also be >= 0 (the API server: "must be greater
#: than or equal to 0"), so no sign but '+' is taken.
_QUANTITY = re.compile(
    r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity(text: str, what: str) -> Decimal:
    """The value of a Kubernetes quantity such as ``250m`` or ``1Gi``, refused as the API server
    would refuse it (not a quantity, or negative)."""
    match = _QUANTITY.fullmatch(text.strip()) if text.strip() == text else None
    if match is None:
        hint = "e.g. 250m or 0.5 for CPU, 512Mi or 1G for memory; no negative values"
        raise UsageError(f"{what} {text!r} is not a Kubernetes quantity", hint=hint)
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix in _BINARY:
        return number * Decimal(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(suffix[1:])) if suffix else number


def _check_resources(o: ExportOptions) -> None:
    """Requests and limits are quantities, and a request is at most its limit."""
    pairs: list[tuple[str, str, str, str, str | None]] = [
        ("CPU", "--cpu", o.cpu, "--cpu-limit", o.cpu_limit),
        ("memory", "--memory", o.memory, "--memory-limit", o.memory_limit),
    ]
    for kind, req_flag, request, lim_flag, limit in pairs:
        wanted = quantity(request, req_flag)
        if limit is None:
            continue
        cap = quantity(limit, lim_flag)
        if wanted > cap:
            raise UsageError(
                f"{kind} request {request} ({req_flag}) is more than its limit {limit} "
                f"({lim_flag}): Kubernetes refuses a request above the limit",
                hint=f"raise {lim_flag} or lower {req_flag}",
            )


# --------------------------------------------------------------------------- shared pieces
_DNS = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def dns_name(text: str) -> str:
    """A model name as a Kubernetes resource name (RFC 1123 label)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-")
    if not name:
        raise UsageError(f"cannot make a Kubernetes name from {text!r}", hint="pass --name")
    return name


def _label(text: str) -> str:
    """A label value: at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def _weights(snap: Snapshot) -> str:
    if snap.challenger is None:
        return f"champion v{snap.champion.version} 100%"
    return (
        f"champion v{snap.champion.version}, challenger v{snap.challenger.version} "
        f"{snap.weight:g}% ({snap.mode})"
    )


def _meta(
    name: str, snap: Snapshot, o: ExportOptions, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Name, namespace, labels and annotations. Nothing here changes with a traffic weight."""
    return {
        "name": name,
        "namespace": o.namespace,
        "labels": _labels(name, snap),
        "annotations": {"mlgate.io/model": snap.model, **(extra or {})},
    }


def _labels(name: str, snap: Snapshot) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": "mlgate",
        "mlgate.io/model": _label(snap.model),
    }


def _image(
    served: Served,
    o: ExportOptions,
    model: str,
    *,
    explicit: str | None = None,
    overridable: bool = False,
) -> str:
    image = explicit or served.image
    if image is None:
        follow = " (or pass --image)" if overridable else ""
        raise UsageError(
            f"version {served.version} ({served.role}) has no image recorded by `mlgate build`",
            hint=f"run mlgate build {model}/{served.version} --repo REGISTRY/REPO --push{follow}",
        )
    if o.image_repository and explicit is None:
        tail = image.rsplit("/", 1)[-1]
        name_tag = tail.split("@", 1)[0]
        tag = name_tag.split(":", 1)[1] if ":" in name_tag else "latest"
        digest = f"@{image.split('@', 1)[1]}" if "@" in image else ""
        image = f"{o.image_repository}:{tag}{digest}"
    return image


def _resources(o: ExportOptions) -> dict[str, Any]:
    limits: dict[str, str] = {"memory": o.memory_limit}
    if o.cpu_limit:
        limits = {"cpu": o.cpu_limit, **limits}
    return {"requests": {"cpu": o.cpu, "memory": o.memory}, "limits": limits}


def _security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


#: Probes of an mlgate server. ``/v2/health/live`` answers 200 whenever the server answers,
#: model or not: liveness must never depend on the model, or a pod whose registry is
#: unreachable at start (the server waits for it) or whose model loads slowly is killed in a
#: loop. ``/health`` answers 503 until the champion is loaded: readiness keeps traffic away
#: until then. A server following the registry answers at once; one serving the model baked
#: into its image (``--pinned``, KServe image mode) answers once that model is loaded, which the
#: startup probe allows 5 minutes (interpreter, imports and the load, on a busy node).
LIVENESS_PATH = "/v2/health/live"
READINESS_PATH = "/health"
STARTUP_SECONDS = 300


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _probes(container: dict[str, Any], *, startup: bool) -> None:
    """Liveness (the process), readiness (the model) and, where the platform admits it, a
    startup probe. Without one (KServe: Knative admits ``startupProbe`` only from Serving 1.15)
    liveness itself tolerates the same 5 minutes without an answer, and Knative's progress
    deadline (600 s by default) bounds a first load."""
    if startup:
        container["startupProbe"] = _probe(LIVENESS_PATH, period=5, failures=STARTUP_SECONDS // 5)
        container["livenessProbe"] = _probe(LIVENESS_PATH, period=10, failures=3)
    else:
        container["livenessProbe"] = _probe(
            LIVENESS_PATH, period=10, failures=STARTUP_SECONDS // 10
        )
    container["readinessProbe"] = _probe(READINESS_PATH, period=5, failures=3)


def _container(
    image: str,
    o: ExportOptions,
    *,
    args: list[str] | None,
    tracking: bool,
    name: str = "mlgate",
    knative: bool = False,
) -> dict[str, Any]:
    """The mlgate server's container; ``knative``: as Knative Serving admits it (KServe)."""
    c: dict[str, Any] = {"name": name, "image": image}
    if args:
        c["args"] = args
    # Knative admits a port name that is empty, 'h2c' or 'http1' only ("Name must be empty, or
    # one of: 'h2c', 'http1'"); KServe's custom-container examples give none.
    port: dict[str, Any] = {"containerPort": PORT, "protocol": "TCP"}
    c["ports"] = [port if knative else {"name": "http", **port}]
    # The root filesystem is read-only: downloads, caches and HOME go to the /tmp emptyDir.
    env = [
        {"name": "HOME", "value": TMP},
        {"name": "MLGATE_CACHE_DIR", "value": f"{TMP}/mlgate-cache"},
    ]
    c["env"] = env
    if tracking:  # credentials come from a Secret, never inline
        c["envFrom"] = [{"secretRef": {"name": o.tracking_secret}}]
    c["resources"] = _resources(o)
    _probes(c, startup=not knative)
    c["securityContext"] = _security()
    c["volumeMounts"] = [{"name": "tmp", "mountPath": TMP}]
    return c


def _pod_spec(container: dict[str, Any], o: ExportOptions) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if o.service_account:
        spec["serviceAccountName"] = o.service_account
    spec["automountServiceAccountToken"] = False
    spec["securityContext"] = {
        "runAsNonRoot": True,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    spec["containers"] = [container]
    spec["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    return spec


# --------------------------------------------------------------------------- k8s
def _k8s(snap: Snapshot, o: ExportOptions) -> tuple[list[dict[str, Any]], list[str]]:
    base = o.name or dns_name(snap.model)
    if not o.pinned:
        image = _image(snap.champion, o, snap.model, explicit=o.image, overridable=True)
        args = [
            "serve",
            snap.model,
            "--host",
            ALL_INTERFACES,
            "--port",
            str(PORT),
            "--champion-alias",
            o.champion_alias,
            "--challenger-alias",
            o.challenger_alias,
        ]
        container = _container(image, o, args=args, tracking=True)
        notes = [
            f"every replica of {base} follows the registry: `mlgate traffic` and alias moves "
            "apply within one poll, no re-export needed for weights"
        ]
        return _workload(base, snap, o, container), notes
    docs: list[dict[str, Any]] = []
    for served in snap.serving:
        name = f"{base}-v{served.version}"[:63].rstrip("-")
        container = _container(_image(served, o, snap.model), o, args=None, tracking=False)
        docs += _workload(name, snap, o, container, role=served)
    notes = [
        f"pinned: one Deployment per version; plain Services do not split traffic by weight: "
        f"route {_weights(snap)} with your ingress or service mesh"
    ]
    return docs, notes


def _workload(
    name: str,
    snap: Snapshot,
    o: ExportOptions,
    container: dict[str, Any],
    role: Served | None = None,
) -> list[dict[str, Any]]:
    selector = {"app.kubernetes.io/name": name}
    extra = {"mlgate.io/serves": f"{role.role} v{role.version}"} if role else None
    meta = _meta(name, snap, o, extra)
    pod_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": "/metrics",
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        # No spec.replicas: the HorizontalPodAutoscaler below owns the count, and a GitOps sync
        # of a fixed number would undo its scaling on every apply.
        "spec": {
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": meta["labels"], "annotations": pod_annotations},
                "spec": _pod_spec(container, o),
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": o.replicas,
            "maxReplicas": o.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        # maxUnavailable, not minAvailable: with one replica, minAvailable 1 blocks every drain.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    return [deployment, service, hpa, pdb]


# --------------------------------------------------------------------------- storage URIs
def storage_uri(served: Served, o: ExportOptions) -> str:
    """The version's artifact location as a URI KServe/Seldon can read, via ``storage_map``."""
    location = served.artifacts or ""
    if location.startswith("/"):  # plain MLflow writes bare paths where mlgate writes file://
        location = "file://" + location
    for prefix, replacement in o.storage_map:
        if location.startswith(prefix):
            location = replacement + location[len(prefix) :]
            break
    if not location.startswith(STORAGE_SCHEMES):
        raise UsageError(
            f"version {served.version} ({served.role}): artifact location {location!r} cannot be "
            "read by the cluster's storage initializer",
            hint="map it with --storage-map PREFIX=URI, e.g. "
            "--storage-map mlflow-artifacts:/=s3://my-mlflow-bucket/ (schemes: "
            + ", ".join(s.rstrip(":/") for s in STORAGE_SCHEMES)
            + ")",
        )
    return location


# --------------------------------------------------------------------------- kserve
def _kserve(snap: Snapshot, o: ExportOptions) -> tuple[list[dict[str, Any]], list[str]]:
    name = o.name or dns_name(snap.model)
    canary = _kserve_canary(snap, o)
    latest = snap.challenger if canary and snap.challenger is not None else snap.champion
    predictor: dict[str, Any] = {"minReplicas": o.replicas, "maxReplicas": o.max_replicas}
    if o.service_account:
        predictor["serviceAccountName"] = o.service_account
    if o.mode == "native":
        predictor["model"] = {
            "modelFormat": {"name": "mlflow"},  # no version: the MLServer runtime lists "1"/"2"
            "protocolVersion": "v2",
            "storageUri": storage_uri(latest, o),
            "resources": _resources(o),
        }
    else:
        image = _image(latest, o, snap.model)
        predictor["containers"] = [
            _container(image, o, args=None, tracking=False, name="kserve-container", knative=True)
        ]
        predictor["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    notes = [
        f"KServe deployment mode {o.deployment_mode} (KServe "
        + ("0.16 and later" if o.deployment_mode == "Knative" else "before 0.16")
        + "): every export of this InferenceService must keep it, KServe refuses a change of mode"
    ]
    if canary:
        predictor["canaryTrafficPercent"] = int(snap.weight)
        notes.append(
            f"canary: the predictor is challenger v{latest.version} at {int(snap.weight)}%; KServe "
            f"sends the rest to the previously rolled-out revision, which must be champion v"
            f"{snap.champion.version}: on a new cluster apply `--stage champion` first"
        )
    elif o.stage == "champion" and snap.challenger is not None and snap.weight > 0:
        notes.append(
            f"stage champion: champion v{snap.champion.version} alone; once it is ready, apply "
            f"`--stage canary` for challenger v{snap.challenger.version} at {snap.weight:g}%"
        )
    # The annotations are copied into the Knative revision template: only what changes with
    # the predictor itself is here (a changing weight annotation would restart the pods).
    annotations = {
        DEPLOYMENT_MODE_ANNOTATION: o.deployment_mode,
        "mlgate.io/predictor-version": latest.version,
    }
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _meta(name, snap, o, annotations),
        "spec": {"predictor": predictor},
    }
    return [doc], notes


def _kserve_canary(snap: Snapshot, o: ExportOptions) -> bool:
    """Whether the predictor is the challenger as a canary (refusing what KServe cannot do)."""
    has_canary = snap.challenger is not None and snap.weight > 0
    if o.stage == "canary" and not has_canary:
        raise UsageError(
            f"{snap.model} has no challenger with traffic: there is no canary stage to export",
            hint=f"export the champion (--stage champion), or set a weight: mlgate traffic "
            f"{snap.model} --weight 10",
        )
    if o.stage == "champion":
        return False
    if snap.challenger is not None and snap.mode == "shadow":
        raise UsageError(
            f"{snap.model} is in shadow mode: a KServe InferenceService cannot mirror traffic",
            hint="use `mlgate export seldon` (mirror), or `mlgate traffic --mode split`",
        )
    if not has_canary:
        return False
    if snap.weight != int(snap.weight):
        raise UsageError(
            f"challenger weight {snap.weight:g}% is not a whole percent: KServe's "
            "canaryTrafficPercent is an integer",
            hint=f"set a whole percent: mlgate traffic {snap.model} --weight {round(snap.weight)}",
        )
    return True


# --------------------------------------------------------------------------- seldon
def _seldon(snap: Snapshot, o: ExportOptions) -> tuple[list[dict[str, Any]], list[str]]:
    """Models named by role, so that the name clients call never changes: the champion's Model
    is ``NAME`` (a promotion or rollback changes its ``storageUri``: Seldon rolls it over), the
    challenger's ``NAME-challenger``; with challenger traffic, an Experiment whose ``default``
    is ``NAME`` takes over ``NAME``'s endpoint and splits (or mirrors) what clients send it."""
    base = o.name or dns_name(snap.model)
    names = {"champion": base, "challenger": f"{base[:52].rstrip('-')}-challenger"}
    docs: list[dict[str, Any]] = []
    for served in snap.serving:
        docs.append(
            {
                "apiVersion": "mlops.seldon.io/v1alpha1",
                "kind": "Model",
                "metadata": _meta(
                    names[served.role],
                    snap,
                    o,
                    {"mlgate.io/serves": f"{served.role} v{served.version}"},
                ),
                "spec": {
                    "storageUri": storage_uri(served, o),
                    "requirements": ["mlflow"],
                    "replicas": o.replicas,
                },
            }
        )
    calls = f"clients call model {base} (header seldon-model: {base}, or /v2/models/{base}/infer)"
    if snap.challenger is None or (snap.mode == "split" and snap.weight <= 0):
        return docs, [f"no challenger traffic: Model {base} alone answers; {calls}"]
    champ, chall = names["champion"], names["challenger"]
    spec: dict[str, Any] = {"default": champ}
    if snap.mode == "shadow":
        # As `mlgate serve` shadows: the champion answers everything, and every request is also
        # scored by the challenger (its answers are compared, never returned).
        spec["candidates"] = [{"name": champ, "weight": 100}]
        spec["mirror"] = {"name": chall, "percent": 100}
    else:
        exact = (10**k for k in range(4) if snap.weight * 10**k == int(snap.weight * 10**k))
        scale = next(exact, 1000)
        chall_w = round(snap.weight * scale)
        spec["candidates"] = [
            {"name": champ, "weight": 100 * scale - chall_w},
            {"name": chall, "weight": chall_w},
        ]
    docs.append(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Experiment",
            "metadata": _meta(f"{base[:52].rstrip('-')}-experiment", snap, o),
            "spec": spec,
        }
    )
    return docs, [
        f"the Experiment takes over Model {base}'s endpoint: {calls}",
        "Seldon Core v2 is under the Business Source License 1.1 (MLServer: Apache-2.0)",
    ]
