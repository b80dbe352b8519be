#!/usr/bin/env bash
# End to end on a real cluster: kind + the Helm chart + LiteLLM + the LLM simulator, all in-cluster.
#   build the image -> kind cluster -> helm install -> LiteLLM (its config in a ConfigMap) and the simulator
#   -> apply examples/routepolicy-litellm.yaml -> wait for Promoted -> post a drift alert -> wait for RolledBack.
# Needs docker, kind, kubectl, helm, curl, openssl and network access for the image builds. The cluster is kept
# afterwards (delete it with `kind delete cluster --name assay`); the script is safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${ASSAY_KIND_CLUSTER:-assay}"
IMAGE="${ASSAY_IMAGE:-assay:e2e}"
TIMEOUT="${ASSAY_E2E_TIMEOUT:-900s}"
SYSTEM_NS=assay-system
NS=llm                      # examples/routepolicy-litellm.yaml calls http://litellm.llm.svc:4000/v1
ROUTE=support-summary
MASTER_KEY=sk-assay-e2e-master-key
# LiteLLM and the two packages its proxy needs, pinned where hack/litellm.sh pins them.
pin() { sed -n "s/^$1=\"\(.*\)\"$/\1/p" hack/litellm.sh; }
LITELLM_VERSION=$(pin LITELLM_VERSION)
LITELLM_IMAGE="assay-litellm:$LITELLM_VERSION"
LAB_IMAGE="${IMAGE%:*}-lab:${IMAGE##*:}"

log() { echo "kind-e2e: $*" >&2; }
for tool in docker kind kubectl helm curl openssl; do
  command -v "$tool" >/dev/null || { log "missing '$tool'"; exit 1; }
done
in_image() { docker run --rm --entrypoint python "$LAB_IMAGE" -c "$1"; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "building $IMAGE and $LITELLM_IMAGE"
docker build -t "$IMAGE" .
docker build --target lab -t "$LAB_IMAGE" .
docker build -t "$LITELLM_IMAGE" - <<EOF
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir "litellm[proxy]==$LITELLM_VERSION" \
    "prometheus-client==$(pin PROMETHEUS_CLIENT_VERSION)" "prisma==$(pin PRISMA_VERSION)"
ENV LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False
ENTRYPOINT ["litellm"]
EOF

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config kind-config.yaml
export KUBECONFIG="$WORK/kubeconfig"      # every command below talks to this cluster, whatever your context
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
kind load docker-image --name "$CLUSTER" "$IMAGE" "$LAB_IMAGE" "$LITELLM_IMAGE"

log "installing the operator (CRDs first: helm does not upgrade crds/)"
kubectl apply --server-side -f charts/assay/crds/
# The webhook's certificate: self-signed, for its Service name and for the NodePort on 127.0.0.1 used below.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=assay-webhook \
  -addext "subjectAltName=DNS:assay-webhook.$SYSTEM_NS.svc,IP:127.0.0.1" \
  -keyout "$WORK/webhook.key" -out "$WORK/webhook.crt" 2>/dev/null
kubectl create namespace "$SYSTEM_NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$SYSTEM_NS" create secret tls assay-webhook-tls --cert="$WORK/webhook.crt" --key="$WORK/webhook.key" \
  --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install assay charts/assay --namespace "$SYSTEM_NS" --create-namespace --wait --timeout 5m \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set service.type=NodePort --set service.webhookNodePort=30843 --set webhook.tls.secretName=assay-webhook-tls \
  --set webhook.networkPolicy.enabled=false   # the alert below comes from the host via the NodePort, not Alertmanager

log "starting the LLM simulator and LiteLLM in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" create secret generic litellm-keys --from-literal=api-key="$MASTER_KEY" \
  --dry-run=client -o yaml | kubectl apply -f -
in_image "
import sys, yaml
from assaylab import litellm
config = litellm.build_config(simulator_url='http://llm-simulator.$NS.svc:8000',
    models=['gpt-4o', 'gpt-4o-mini', 'tiny-llm', 'judge-large'], aliases={'$ROUTE': 'gpt-4o'},
    master_key='os.environ/LITELLM_MASTER_KEY')
yaml.safe_dump(config, sys.stdout, sort_keys=False)" >"$WORK/config.yaml"
kubectl -n "$NS" create configmap litellm-config --from-file="$WORK/config.yaml" \
  --dry-run=client -o yaml | kubectl apply -f -
in_image "
import json
from assaylab import simulator
for record in simulator.make_dataset(600, seed=1): print(json.dumps(record))" >"$WORK/prompts.jsonl"
kubectl -n "$NS" create configmap "$ROUTE-traffic" --from-file="$WORK/prompts.jsonl" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm-simulator}
spec:
  selector: {matchLabels: {app: llm-simulator}}
  template:
    metadata: {labels: {app: llm-simulator}}
    spec:
      containers:
        - name: simulator
          image: $LAB_IMAGE
          imagePullPolicy: Never
          command: [python, -m, assaylab.simulator, --host, 0.0.0.0, --port, "8000"]
          ports: [{containerPort: 8000}]
          readinessProbe: {httpGet: {path: /healthz, port: 8000}}
---
apiVersion: v1
kind: Service
metadata: {name: llm-simulator}
spec:
  selector: {app: llm-simulator}
  ports: [{port: 8000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: litellm}
spec:
  selector: {matchLabels: {app: litellm}}
  template:
    metadata: {labels: {app: litellm}}
    spec:
      containers:
        - name: litellm
          image: $LITELLM_IMAGE
          imagePullPolicy: Never
          args: [--config, /etc/litellm/config.yaml, --host, 0.0.0.0, --port, "4000"]
          env:
            - name: LITELLM_MASTER_KEY
              valueFrom: {secretKeyRef: {name: litellm-keys, key: api-key}}
          ports: [{containerPort: 4000}]
          readinessProbe: {httpGet: {path: /health/liveliness, port: 4000}, periodSeconds: 5}
          volumeMounts: [{name: config, mountPath: /etc/litellm}]
      volumes: [{name: config, configMap: {name: litellm-config}}]
---
apiVersion: v1
kind: Service
metadata: {name: litellm}
spec:
  selector: {app: litellm}
  ports: [{port: 4000}]
EOF
kubectl -n "$NS" rollout status deployment/llm-simulator deployment/litellm --timeout=10m

log "qualifying: waiting for $ROUTE to be Promoted (timeout $TIMEOUT)"
kubectl -n "$NS" apply -f examples/routepolicy-litellm.yaml
kubectl -n "$NS" wait "routepolicy/$ROUTE" --for=jsonpath='{.status.phase}'=Promoted --timeout="$TIMEOUT"
kubectl -n "$NS" get routepolicies,qualificationruns

log "posting a drift alert to the operator's webhook (NodePort 30843 -> 127.0.0.1:8443)"
TOKEN=$(kubectl -n "$SYSTEM_NS" get secret assay-webhook -o jsonpath='{.data.token}' | base64 -d)
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LABELS="{\"alertname\": \"LLMRouteQualityDrift\", \"namespace\": \"$NS\", \"route\": \"$ROUTE\", \"severity\": \"warning\"}"
kubectl -n "$SYSTEM_NS" get secret assay-webhook-tls -o jsonpath='{.data.tls\.crt}' | base64 -d >"$WORK/webhook-ca.crt"
curl -fsS --cacert "$WORK/webhook-ca.crt" -X POST https://127.0.0.1:8443/alerts -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data @- <<EOF
{"version": "4", "status": "firing", "receiver": "assay", "groupKey": "{}:{alertname=\"LLMRouteQualityDrift\"}",
 "truncatedAlerts": 0, "groupLabels": {"alertname": "LLMRouteQualityDrift"}, "commonLabels": $LABELS,
 "commonAnnotations": {}, "externalURL": "http://alertmanager.invalid",
 "alerts": [{"status": "firing", "labels": $LABELS, "annotations": {"summary": "kind e2e"},
             "startsAt": "$NOW", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0e2e"}]}
EOF
kubectl -n "$NS" wait "routepolicy/$ROUTE" --for=jsonpath='{.status.phase}'=RolledBack --timeout=120s
kubectl -n "$NS" get routepolicy "$ROUTE"
log "ok: promoted on evidence, rolled back on the alert"
