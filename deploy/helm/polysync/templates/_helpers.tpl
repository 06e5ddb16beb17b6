{{- define "polysync.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "polysync.serviceAccountName" -}}
{{- default (include "polysync.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "polysync.labels" -}}
app.kubernetes.io/name: polysync
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "polysync.selector" -}}
app.kubernetes.io/name: polysync
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
