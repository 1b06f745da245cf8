"""Lints and renders helm/ayush with Helm itself (helm-python-sdk bundles Helm as a library)
and checks the rendered manifests for what an SRE expects of the chart. Prints one line per
check; exits non-zero with the reason on the first failure. Writes the ayush.toml each mode
renders into OUT_DIR, for the real binary to check.

usage: check_chart.py CHART_DIR OUT_DIR"""

import copy
import os
import sys

import helm_python
import yaml

CHART, OUT = sys.argv[1], sys.argv[2]


def check(cond, what):
    if not cond:
        sys.exit(f"FAIL {what}")
    print(f"ok   {what}")


def render(values):
    chart = helm_python.Chart.load(CHART)
    out = chart.render(values, name="ayush", namespace="ai")
    docs = []
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs, out


def kinds(docs):
    return {d["kind"]: d for d in docs}


def pod_checks(spec, mode):
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    sc, psc = c["securityContext"], pod["securityContext"]
    check(psc["runAsNonRoot"] and psc["runAsUser"] != 0, f"{mode}: runs as a non-root user")
    check(psc["seccompProfile"]["type"] == "RuntimeDefault", f"{mode}: seccomp RuntimeDefault")
    check(sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], f"{mode}: read-only root, no escalation")
    check(sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], f"{mode}: every capability dropped")
    check(c["livenessProbe"]["httpGet"]["path"] == "/livez", f"{mode}: liveness on /livez")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{mode}: readiness on /readyz")
    startup = c["startupProbe"]
    check(startup["periodSeconds"] * startup["failureThreshold"] >= 300, f"{mode}: a slow start is waited for, not killed")
    check({"cpu", "memory"} <= set(c["resources"]["requests"]), f"{mode}: resource requests")
    check(not pod["automountServiceAccountToken"], f"{mode}: no Kubernetes API token in the pod")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    check("/tmp" in mounts and mounts["/etc/ayush"]["readOnly"], f"{mode}: writable /tmp, read-only config")
    check("checksum/config" in spec["template"]["metadata"]["annotations"], f"{mode}: checksum/config rolls the pods")
    return pod, c


result = helm_python.lint(CHART)
check(not result["errors"], f"helm lint: {result['errors']}")

# One replica on SQLite: a StatefulSet with its own volume.
docs, raw = render({})
k = kinds(docs)
check("StatefulSet" in k and "Deployment" not in k, "default: a StatefulSet, no Deployment")
sts = k["StatefulSet"]["spec"]
pod, c = pod_checks(sts, "default")
check(sts["replicas"] == 1 and sts["volumeClaimTemplates"][0]["metadata"]["name"] == "data", "default: one replica and its data volume")
check(not any(e["name"] == "AYUSH_DATABASE__URL" for e in c.get("env", [])), "default: SQLite, no database URL")
toml = k["ConfigMap"]["data"]["ayush.toml"]
with open(os.path.join(OUT, "default.toml"), "w") as f:
    f.write(toml)
check('data_dir = "/var/lib/ayush"' in toml and "cookie_secure = true" in toml, "default: config rendered from values")
check(k["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1, "default: a PodDisruptionBudget")
np = k["NetworkPolicy"]["spec"]
check("Egress" in np["policyTypes"] and all("to" not in rule for rule in np["egress"]), "default: egress denied except DNS")
check(all(x not in k for x in ["Ingress", "HorizontalPodAutoscaler", "ServiceMonitor"]), "default: no ingress, HPA or ServiceMonitor")
check("ayushctl --local" in raw["ayush/templates/NOTES.txt"], "NOTES tell how to create the first admin")

# A change of configuration changes the pods' checksum.
docs2, _ = render({"config": {"publicUrl": "https://ayush.corp.example"}})
a = k["StatefulSet"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
b = kinds(docs2)["StatefulSet"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
check(a != b, "a config change changes checksum/config")

# Scale-out on PostgreSQL with the optional parts on.
scale = {
    "replicaCount": 3,
    "database": {"existingSecret": "ayush-db"},
    "secrets": {"existingSecret": "ayush-keys"},
    "metrics": {"tokenSecret": "ayush-metrics", "serviceMonitor": {"enabled": True}},
    "ingress": {"enabled": True, "host": "ayush.corp.example", "tlsSecret": "ayush-tls"},
    "autoscaling": {"enabled": True},
    "networkPolicy": {"egressCIDRs": ["10.20.0.0/16"]},
    "persistence": {"modelsClaim": "ayush-models"},
}
docs, raw = render(scale)
k = kinds(docs)
check("Deployment" in k and "StatefulSet" not in k, "scale-out: a Deployment, no StatefulSet")
dep = k["Deployment"]["spec"]
pod, c = pod_checks(dep, "scale-out")
env = {e["name"]: e for e in c["env"]}
check(env["AYUSH_DATABASE__URL"]["valueFrom"]["secretKeyRef"]["name"] == "ayush-db", "scale-out: the database URL from its Secret")
check(env["AYUSH_SERVER__METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "ayush-metrics", "scale-out: the metrics token from its Secret")
vols = {v["name"]: v for v in pod["volumes"]}
check(vols["secrets"]["secret"]["secretName"] == "ayush-keys", "scale-out: the same keys on every replica")
check(vols["models"]["persistentVolumeClaim"]["claimName"] == "ayush-models", "scale-out: models from a shared claim")
check('secrets_dir = "/etc/ayush-secrets"' in k["ConfigMap"]["data"]["ayush.toml"], "scale-out: config points at the mounted keys")
with open(os.path.join(OUT, "scale-out.toml"), "w") as f:
    f.write(k["ConfigMap"]["data"]["ayush.toml"])
check("replicas" not in dep and k["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 6, "scale-out: the HPA owns the replica count")
check(k["Ingress"]["spec"]["tls"][0]["secretName"] == "ayush-tls", "scale-out: TLS at the ingress")
check(k["ServiceMonitor"]["spec"]["endpoints"][0]["authorization"]["credentials"]["name"] == "ayush-metrics", "scale-out: the ServiceMonitor sends the token")
cidrs = [r["to"][0]["ipBlock"]["cidr"] for r in k["NetworkPolicy"]["spec"]["egress"] if "to" in r]
check(cidrs == ["10.20.0.0/16"], "scale-out: egress only to the listed networks")

# Refusals at render.
def refused(values, words, what):
    try:
        render(values)
    except helm_python.HelmError as e:
        check(words in str(e), f"{what}: {e}")
        return
    check(False, f"{what}: rendered anyway")

refused({"replicaCount": 2}, "needs an external PostgreSQL", "replicaCount > 1 without PostgreSQL is refused")
refused({"replicaCount": 2, "database": {"existingSecret": "db"}}, "same audit and sealing keys", "replicas without shared keys are refused")
typo = copy.deepcopy(scale)
typo["replicaCont"] = 2
lint = helm_python.lint(CHART, typo)
check(any("replicaCont" in str(e) for e in lint["errors"]), f"a misspelt value fails the schema: {lint['errors']}")
refused({"service": {"port": "eighty"}}, "port", "a wrong type fails the schema")
print("chart ok")
