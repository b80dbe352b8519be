{{- define "assay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "assay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "assay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "assay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "assay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "assay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: assay
{{- end }}

{{- define "assay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "assay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "assay.subjects" -}}
- kind: ServiceAccount
  name: {{ include "assay.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The operator's image; evaluation Jobs run the same one. */}}
{{- define "assay.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "assay.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "assay.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/*
The operator's rules in the namespaces it watches: exactly the verbs its code calls (tests/unit/chart/rbac_scan.py
reads them from the source and test_chart_rbac.py compares), no wildcards. It creates each run's evaluator
ServiceAccount, Role and RoleBinding; Kubernetes lets it grant only what it holds, so the configmaps verbs below
cover the evaluator's Role. No get/update on roles or rolebindings, no bind or escalate: it cannot widen its own.
*/}}
{{- define "assay.namespacedRules" -}}
- apiGroups: [assay.dev]
  resources: [routepolicies]
  verbs: [get, list, watch, patch]
- apiGroups: [assay.dev]
  resources: [qualificationruns]
  verbs: [get, list, watch, patch, create]
- apiGroups: [assay.dev]
  resources: [routepolicies/status, qualificationruns/status]
  verbs: [patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create, delete]
# Evidence chunks written by the evaluator, and the LiteLLM proxy's config.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, create, patch]
# API keys are referenced by name and read one at a time; never listed or watched.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create]
# Rolling the LiteLLM Deployment after its config changed.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, patch]
- apiGroups: [aigateway.envoyproxy.io]
  resources: [aigatewayroutes]
  verbs: [get, patch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, patch]
{{- end }}

{{/* Cluster-scoped reads kopf needs in either mode: it scans CRDs to resolve its resources. */}}
{{- define "assay.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end }}

{{/* "true" when the webhook serves TLS (the default), else empty. */}}
{{- define "assay.webhookTLS" -}}
{{- if and .Values.webhook.enabled .Values.webhook.tls.enabled }}true{{ end }}
{{- end }}

{{/*
The kubernetes.io/tls Secret the webhook's certificate and key are mounted from: webhook.tls.secretName, or the one
cert-manager writes. TLS on without either cannot run (the operator would find no certificate), so it fails here.
*/}}
{{- define "assay.webhookTLSSecretName" -}}
{{- $tls := .Values.webhook.tls }}
{{- if $tls.secretName }}
{{- $tls.secretName }}
{{- else if $tls.certManager.enabled }}
{{- printf "%s-webhook-tls" (include "assay.fullname" .) }}
{{- else }}
{{- fail "webhook.tls.enabled is true but no certificate is given: set webhook.tls.secretName to an existing kubernetes.io/tls Secret (tls.crt, tls.key), or webhook.tls.certManager.enabled=true with webhook.tls.certManager.issuerRef.name, or webhook.tls.enabled=false to serve plain HTTP" }}
{{- end }}
{{- end }}

{{/* Where the operator container finds tls.crt and tls.key (read-only). */}}
{{- define "assay.webhookTLSMountPath" -}}
/etc/assay/webhook-tls
{{- end }}

{{/* The DNS names Alertmanager dials: the webhook Service, short and qualified. */}}
{{- define "assay.webhookDNSNames" -}}
{{- $service := printf "%s-webhook" (include "assay.fullname" .) -}}
- {{ $service }}
- {{ $service }}.{{ .Release.Namespace }}
- {{ $service }}.{{ .Release.Namespace }}.svc
- {{ $service }}.{{ .Release.Namespace }}.svc.{{ .Values.webhook.tls.certManager.clusterDomain }}
{{- end }}
