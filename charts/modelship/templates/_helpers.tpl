{{/*
Names, labels and the few decisions more than one template needs.
*/}}

{{- define "modelship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelship.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "modelship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelship.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of everything the release makes, without a component. */}}
{{- define "modelship.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
app.kubernetes.io/name: {{ include "modelship.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelship
{{- end -}}

{{- define "modelship.labels" -}}
{{ include "modelship.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modelship.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelship.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The one tag every Modelship image carries. */}}
{{- define "modelship.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "modelship.operatorImage" -}}
{{- printf "%s/modelship-operator:%s" (trimSuffix "/" .Values.image.registry) (include "modelship.imageTag" .) -}}
{{- end -}}

{{/* "true" when the replicas run as Kopf peers. */}}
{{- define "modelship.peering" -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/* "true" when the operator watches only the listed namespaces. */}}
{{- define "modelship.namespaced" -}}
{{- if .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* Rules the operator needs in every namespace it watches (ClusterRole or Role). */}}
{{- define "modelship.namespacedRules" -}}
- apiGroups: [modelship.io]
  resources: [modeldeployments, modelensembles]
  verbs: [get, list, watch, patch]
- apiGroups: [modelship.io]
  resources: [modeldeployments/status, modelensembles/status, modeldeployments/scale]
  verbs: [get, patch, update]
# Children carry blockOwnerDeletion owner references; where the
# OwnerReferencesPermissionEnforcement admission plugin runs, setting one needs
# update on the owner's finalizers.
- apiGroups: [modelship.io]
  resources: [modeldeployments/finalizers, modelensembles/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{/* Cluster-scoped reads Kopf makes in either mode: it scans CRDs and lists namespaces. */}}
{{- define "modelship.clusterReadRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end -}}

{{/* Checks no schema can express; called by the Deployment. */}}
{{- define "modelship.validate" -}}
{{- if eq (int .Values.health.port) (int .Values.metrics.port) -}}
{{- fail (printf "health.port and metrics.port must differ (both are %d)" (int .Values.health.port)) -}}
{{- end -}}
{{- end -}}
