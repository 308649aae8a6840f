{{/* Name of the chart, overridable. */}}
{{- define "centralauth.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it already contains the chart name. */}}
{{- define "centralauth.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "centralauth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "centralauth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "centralauth.labels" -}}
{{ include "centralauth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The image: repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "centralauth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "centralauth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "centralauth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The permissions the controllers need in every watched namespace (or cluster-wide):
- the three kinds: watch (caches and controllers), patch/update (annotations such as the
  client ID, finalizers), their status (server-side apply), finalizers (owner references
  with blockOwnerDeletion);
- Secrets: generated client secrets and the organizations' credentials Secrets (create,
  patch, delete), and reading login Secrets (passwords, SMTP credentials);
- ConfigMaps: apple-app-site-association / assetlinks.json of native apps;
- Events (events.k8s.io) on every state change;
- Deployments, StatefulSets, DaemonSets: watch rollouts of OnRollout secrets, stamp the
  fingerprint annotation on their pod templates (patch). Never create or delete.
*/}}
{{- define "centralauth.rules" -}}
- apiGroups: [centralauth.io]
  resources: [organizations, clientsecrets, nativeapps]
  verbs: [get, list, watch, patch, update]
- apiGroups: [centralauth.io]
  resources: [organizations/status, clientsecrets/status, nativeapps/status]
  verbs: [get, patch, update]
- apiGroups: [centralauth.io]
  resources: [organizations/finalizers, clientsecrets/finalizers, nativeapps/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get, list, watch, create, patch, update, delete]
# Users: the login path reads one User by name, creates it at a first login and patches its
# status and its passkeys (spec.passkeys); a discoverable passkey login lists the Users with
# one user-handle label; the leader's User controller lists and watches them, and patches the
# finalizer and status. Nobody updates or deletes Users but their admins.
- apiGroups: [centralauth.io]
  resources: [users]
  verbs: [get, list, watch, create, patch]
- apiGroups: [centralauth.io]
  resources: [users/status]
  verbs: [get, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, patch]
{{- end }}

{{/* Cross-field checks the JSON schema cannot phrase clearly. */}}
{{- define "centralauth.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (eq .Values.store.type "memory") }}
{{- fail "replicas > 1 needs store.type: redis (with store.redis.url or store.redis.existingSecret): sessions, codes and tokens must be shared by every replica" }}
{{- end }}
{{- if and (eq .Values.store.type "redis") (not .Values.store.redis.url) (not .Values.store.redis.existingSecret.name) }}
{{- fail "store.type: redis needs store.redis.url (redis://host:port/db) or store.redis.existingSecret.name" }}
{{- end }}
{{- if and .Values.store.redis.caSecret.name (hasPrefix "redis://" .Values.store.redis.url) (not .Values.store.redis.existingSecret.name) }}
{{- fail "store.redis.caSecret is for TLS: use a rediss:// URL in store.redis.url, or drop caSecret" }}
{{- end }}
{{- end }}
