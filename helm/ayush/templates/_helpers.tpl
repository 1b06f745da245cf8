{{- define "ayush.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ayush.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ayush.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "ayush.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ayush.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ayush.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* PostgreSQL mode: several replicas share one database. */}}
{{- define "ayush.scaleOut" -}}
{{- if .Values.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* Refuses values that would run replicas that cannot share their state. */}}
{{- define "ayush.validate" -}}
{{- $replicas := int .Values.replicaCount -}}
{{- if and (gt $replicas 1) (not .Values.database.existingSecret) -}}
{{- fail "replicaCount > 1 needs an external PostgreSQL: set database.existingSecret to a Secret holding its URL (SQLite serves one replica)" -}}
{{- end -}}
{{- if and (or (gt $replicas 1) .Values.autoscaling.enabled) (not .Values.secrets.existingSecret) -}}
{{- fail "several replicas need the same audit and sealing keys: set secrets.existingSecret (see values.yaml)" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (not .Values.database.existingSecret) -}}
{{- fail "autoscaling needs an external PostgreSQL: set database.existingSecret" -}}
{{- end -}}
{{- end -}}

{{/* The pod: the same for the StatefulSet and the Deployment. */}}
{{- define "ayush.podTemplate" -}}
metadata:
  labels:
    {{- include "ayush.selectorLabels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: ayush
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve", "--config", "/etc/ayush/ayush.toml"]
      {{- if or .Values.database.existingSecret .Values.metrics.tokenSecret }}
      env:
        {{- if .Values.database.existingSecret }}
        - name: AYUSH_DATABASE__URL
          valueFrom:
            secretKeyRef:
              name: {{ .Values.database.existingSecret }}
              key: {{ .Values.database.urlKey }}
        {{- end }}
        {{- if .Values.metrics.tokenSecret }}
        - name: AYUSH_SERVER__METRICS_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ .Values.metrics.tokenSecret }}
              key: token
        {{- end }}
      {{- end }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      # Startup may load models and rebuild the index: the startup probe waits for it, so the
      # liveness probe never kills a pod that is still starting; readiness only takes a busy pod
      # out of the Service, it never restarts it.
      startupProbe:
        httpGet: { path: /livez, port: http }
        periodSeconds: 5
        failureThreshold: 120
      livenessProbe:
        httpGet: { path: /livez, port: http }
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 6
      readinessProbe:
        httpGet: { path: /readyz, port: http }
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: config
          mountPath: /etc/ayush
          readOnly: true
        - name: data
          mountPath: /var/lib/ayush
        - name: tmp
          mountPath: /tmp
        {{- if .Values.secrets.existingSecret }}
        - name: secrets
          mountPath: /etc/ayush-secrets
          readOnly: true
        {{- end }}
        {{- if and (include "ayush.scaleOut" .) .Values.persistence.modelsClaim }}
        - name: models
          mountPath: /var/lib/ayush/models
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "ayush.fullname" . }}
    - name: tmp
      emptyDir: {}
    {{- if .Values.secrets.existingSecret }}
    - name: secrets
      secret:
        secretName: {{ .Values.secrets.existingSecret }}
        defaultMode: 0400
    {{- end }}
    {{- if include "ayush.scaleOut" . }}
    - name: data
      emptyDir: {}
    {{- if .Values.persistence.modelsClaim }}
    - name: models
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.modelsClaim }}
    {{- end }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
