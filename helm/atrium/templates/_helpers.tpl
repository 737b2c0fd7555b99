{{/* Names, labels and images shared by the templates. */}}

{{- define "atrium.labels" -}}
app.kubernetes.io/name: atrium
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Selector labels of one component: include "atrium.selector" (list . "hub") */}}
{{- define "atrium.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: atrium
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "atrium.hubImage" -}}
{{ .Values.hub.image.name }}:{{ .Values.hub.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "atrium.proxyImage" -}}
{{ .Values.proxy.image.name | default .Values.hub.image.name }}:{{ .Values.proxy.image.tag | default .Values.hub.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "atrium.singleuserImage" -}}
{{ .Values.singleuser.image.name }}:{{ .Values.singleuser.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The Secret holding the PostgreSQL URL, and its key */}}
{{- define "atrium.dbSecretName" -}}
{{ .Values.hub.db.existingSecret.name | default "hub" }}
{{- end }}
{{- define "atrium.dbSecretKey" -}}
{{ if .Values.hub.db.existingSecret.name }}{{ .Values.hub.db.existingSecret.key }}{{ else }}db-url{{ end }}
{{- end }}

{{/* Security context of every container: non-root, nothing gained, read-only root */}}
{{- define "atrium.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{- define "atrium.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
A value as a Python literal: JSON is Python, except for true, false and null.
Strings are JSON-quoted, so quotes and backslashes stay inert.
*/}}
{{- define "atrium.py" -}}
{{- $v := . -}}
{{- if kindIs "invalid" $v -}}None
{{- else if kindIs "bool" $v -}}{{ ternary "True" "False" $v }}
{{- else if kindIs "map" $v -}}
{{- $items := list -}}
{{- range $k := keys $v | sortAlpha -}}
{{- $items = append $items (printf "%s: %s" (toJson $k) (include "atrium.py" (index $v $k))) -}}
{{- end -}}
{{ printf "{%s}" (join ", " $items) }}
{{- else if kindIs "slice" $v -}}
{{- $items := list -}}
{{- range $v -}}
{{- $items = append $items (include "atrium.py" .) -}}
{{- end -}}
{{ printf "[%s]" (join ", " $items) }}
{{- else -}}{{ toJson $v }}
{{- end -}}
{{- end }}
