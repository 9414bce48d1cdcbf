{{/* The chart's name, truncated to the 63 characters of a DNS label. */}}
{{- define "otel-gitjob.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object it renders. */}}
{{- define "otel-gitjob.fullname" -}}
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

{{- define "otel-gitjob.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otel-gitjob.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otel-gitjob.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "otel-gitjob.labels" -}}
helm.sh/chart: {{ include "otel-gitjob.chart" . }}
{{ include "otel-gitjob.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "otel-gitjob.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otel-gitjob.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Memory limit in MiB: baseMi + perObjectKi x expectedObjects, rounded up (docs/fleet.md, sizing). */}}
{{- define "otel-gitjob.memoryMi" -}}
{{- $s := .Values.sizing }}
{{- $kib := mul (int $s.perObjectKi) (int $s.expectedObjects) }}
{{- add (int $s.baseMi) (div (add $kib 1023) 1024) }}
{{- end }}

{{/* The metric-name regex of what Prometheus keeps from the sidecar when fleet-controller exports the Fleet names. */}}
{{- define "otel-gitjob.metricRelabelings" -}}
{{- if .Values.fleetControllerMetrics }}
metricRelabelings:
  - sourceLabels: [__name__]
    regex: "fleet_(gitrepo|helmop)_.*"
    action: drop
{{- end }}
{{- end }}
