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

{{/* The custom-resource-state config's resources as RBAC rules: [{group, plural}] (YAML list). */}}
{{- define "otel-gitjob.customResourceRules" -}}
{{- $rules := list }}
{{- if .Values.customResourceState.enabled }}
{{- range (dig "spec" "resources" (list) .Values.customResourceState.config) }}
{{- $gvk := .groupVersionKind | default dict }}
{{- $plural := .resourcePlural }}
{{- if not $plural }}
{{- $lower := lower (required "customResourceState: every resource needs groupVersionKind.kind" $gvk.kind) }}
{{- if or (hasSuffix "s" $lower) (hasSuffix "x" $lower) (hasSuffix "z" $lower) (hasSuffix "ch" $lower) (hasSuffix "sh" $lower) }}
{{- $plural = printf "%ses" $lower }}
{{- else if and (hasSuffix "y" $lower) (gt (len $lower) 1) (not (has (substr (sub (len $lower) 2 | int) (sub (len $lower) 1 | int) $lower) (list "a" "e" "i" "o" "u"))) }}
{{- $plural = printf "%sies" (trimSuffix "y" $lower) }}
{{- else }}
{{- $plural = printf "%ss" $lower }}
{{- end }}
{{- end }}
{{- $rules = append $rules (dict "group" ($gvk.group | default "") "plural" $plural) }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/* The per-instrument cardinality limit: cardinalityLimit, else 1.25 x expectedObjects, at least 10,000. */}}
{{- define "otel-gitjob.cardinalityLimit" -}}
{{- if gt (int .Values.cardinalityLimit) 0 }}
{{- int .Values.cardinalityLimit }}
{{- else }}
{{- max 10000 (div (add (mul (int .Values.sizing.expectedObjects) 5) 3) 4) }}
{{- end }}
{{- end }}
