{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "coder-metrics.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified name for this release's objects: fullnameOverride, or the
release name when it already contains the chart name, else release-chart.
Cut at 63 characters (some Kubernetes name fields are DNS labels).
*/}}
{{- define "coder-metrics.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "coder-metrics.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object the chart renders. */}}
{{- define "coder-metrics.labels" -}}
helm.sh/chart: {{ include "coder-metrics.chart" . }}
app.kubernetes.io/name: {{ include "coder-metrics.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coder-metrics
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the controller's own objects (Deployment, Service, RBAC, PDB). */}}
{{- define "coder-metrics.controllerLabels" -}}
{{ include "coder-metrics.labels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The labels the controller's Pods are selected by (immutable on the Deployment). */}}
{{- define "coder-metrics.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coder-metrics.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The ServiceAccount the controller runs as. */}}
{{- define "coder-metrics.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "coder-metrics.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "coder-metrics.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The injected exporter sidecar's image: exporter.image, else the controller's own. */}}
{{- define "coder-metrics.exporterImage" -}}
{{- .Values.exporter.image | default (include "coder-metrics.image" .) }}
{{- end }}

{{/* The leader-election Lease name. */}}
{{- define "coder-metrics.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (printf "%s-controller" (include "coder-metrics.fullname" .)) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The RBAC rules of one scope from files/rbac-rules.yaml, as a YAML list
without the chart-only "scope" key. Call with (dict "root" $ "scopes" (list "watched")).
*/}}
{{- define "coder-metrics.rbacRules" -}}
{{- $rules := list }}
{{- range (.root.Files.Get "files/rbac-rules.yaml" | fromYamlArray) }}
{{- if has .scope $.scopes }}
{{- $rules = append $rules (omit . "scope") }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/*
Cross-field checks values.schema.json cannot express with a clear message.
*/}}
{{- define "coder-metrics.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled: true (two controllers without a Lease would fight over the same objects)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor selects that Service" }}
{{- end }}
{{- end }}
