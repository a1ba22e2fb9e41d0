{{/* Names ---------------------------------------------------------------------------- */}}

{{- define "scalemcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Truncated to 57 so that "-redis" and "-app" suffixes still fit in 63 characters. */}}
{{- define "scalemcp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "scalemcp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "scalemcp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "scalemcp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "scalemcp.secretName" -}}
{{- include "scalemcp.fullname" . }}
{{- end }}

{{/* Labels --------------------------------------------------------------------------- */}}

{{- define "scalemcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scalemcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- /* Task-worker pods: a name of their own, so the Service, the PDB and the
serving Deployment never select them. */ -}}
{{- define "scalemcp.workerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "scalemcp.name" . }}-worker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "scalemcp.workerLabels" -}}
helm.sh/chart: {{ include "scalemcp.chart" . }}
{{ include "scalemcp.workerSelectorLabels" . }}
app.kubernetes.io/component: task-worker
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: scalemcp
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "scalemcp.labels" -}}
helm.sh/chart: {{ include "scalemcp.chart" . }}
{{ include "scalemcp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: scalemcp
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "scalemcp.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Values that cannot work together: refuse to render, saying why. -------------------- */}}

{{- define "scalemcp.validate" -}}
{{- $v := .Values }}
{{- if eq $v.backend "memory" }}
{{- if gt (int $v.replicaCount) 1 }}
{{- fail (printf "scalemcp: backend=memory keeps sessions inside one process, so replicaCount must be 1 (got %d); set backend=redis (or backend=stateless) to run more pods" (int $v.replicaCount)) }}
{{- end }}
{{- if gt (int $v.server.workers) 1 }}
{{- fail (printf "scalemcp: backend=memory keeps sessions inside one process, so server.workers must be 1 (got %d); set backend=redis (or backend=stateless) to run more workers" (int $v.server.workers)) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- fail "scalemcp: backend=memory keeps sessions inside one process, so autoscaling.enabled must be false; set backend=redis (or backend=stateless) to autoscale" }}
{{- end }}
{{- end }}
{{- if and $v.redisDemo.enabled (ne $v.backend "redis") }}
{{- fail "scalemcp: redisDemo.enabled needs backend=redis" }}
{{- end }}
{{- if eq $v.backend "redis" }}
{{- if and $v.redis.existingSecret (not (or $v.redis.existingSecretUrlKey $v.redis.existingSecretPasswordKey)) }}
{{- fail "scalemcp: redis.existingSecret needs redis.existingSecretUrlKey (a complete URL) or redis.existingSecretPasswordKey (a password)" }}
{{- end }}
{{- if not (or $v.redis.url (and $v.redis.existingSecret $v.redis.existingSecretUrlKey) (include "scalemcp.redisUrl" .)) }}
{{- fail (printf "scalemcp: backend=redis needs redis.url, redis.existingSecret with redis.existingSecretUrlKey, redisDemo.enabled, or the hosts of redis.mode=%s (redis.standalone.host, redis.sentinel.hosts or redis.cluster.nodes)" $v.redis.mode) }}
{{- end }}
{{- if and $v.redisDemo.enabled (ne $v.redis.mode "standalone") }}
{{- fail "scalemcp: redisDemo.enabled runs a standalone Redis, so redis.mode must be standalone" }}
{{- end }}
{{- end }}
{{- /* After SIGTERM the server ends SSE streams at drainTimeoutSeconds and cancels what is
left 5 s later (scalemcp.ops.drain.HARD_STOP_MARGIN_S); the kubelet kills at the grace. */}}
{{- $shutdown := add $v.preStopSleepSeconds $v.server.drainTimeoutSeconds 5 | int }}
{{- if le (int $v.terminationGracePeriodSeconds) $shutdown }}
{{- fail (printf "scalemcp: terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + server.drainTimeoutSeconds + 5 s for the server's hard stop (%d), or pods are killed while SSE streams drain" (int $v.terminationGracePeriodSeconds) $shutdown) }}
{{- end }}
{{- include "scalemcp.validateAuth" . }}
{{- include "scalemcp.validateStateKey" . }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail "scalemcp: autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and $v.server.tls.enabled (not $v.server.tls.secretName) }}
{{- fail "scalemcp: server.tls.enabled needs server.tls.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) }}
{{- fail "scalemcp: httpRoute.enabled needs httpRoute.parentRefs (the Gateway to attach to)" }}
{{- end }}
{{- end }}

{{/* Every pod of a fleet must sign requestState with the same key. */}}
{{- define "scalemcp.validateStateKey" -}}
{{- $a := .Values.auth }}
{{- if and (ne .Values.backend "memory") (not (or $a.stateKey $a.existingSecret $a.generateStateKey)) }}
{{- fail (printf "scalemcp: backend=%s runs workers that must share one state key (it signs requestState): set auth.stateKey (make one: python3 -c 'import secrets; print(secrets.token_hex(32))'), or auth.existingSecret, or auth.generateStateKey=true (helm install/upgrade only: under helm template, Argo CD or Flux it would change on every render)" .Values.backend) }}
{{- end }}
{{- if and $a.previousStateKeys (not $a.stateKey) }}
{{- fail "scalemcp: auth.previousStateKeys needs auth.stateKey (with auth.existingSecret, put them in that Secret under auth.existingSecretPreviousStateKeysKey)" }}
{{- end }}
{{- if and $a.existingSecretPreviousStateKeysKey (not $a.existingSecret) }}
{{- fail "scalemcp: auth.existingSecretPreviousStateKeysKey needs auth.existingSecret" }}
{{- end }}
{{- if and $a.stateKey (has $a.stateKey $a.previousStateKeys) }}
{{- fail "scalemcp: auth.previousStateKeys repeats auth.stateKey: list only the other keys" }}
{{- end }}
{{- end }}

{{/* The auth mode and what it needs, as the server checks them at start (docs/auth.md). */}}
{{- define "scalemcp.validateAuth" -}}
{{- $a := .Values.auth }}
{{- $keys := or $a.apiKeys (and $a.existingSecret $a.existingSecretApiKeysKey) }}
{{- $jwks := and $a.existingSecret $a.existingSecretJwksKey }}
{{- if and $a.existingSecretJwksKey (not $a.existingSecret) }}
{{- fail "scalemcp: auth.existingSecretJwksKey needs auth.existingSecret (the Secret holding the JWKS)" }}
{{- end }}
{{- if eq $a.mode "api_key" }}
{{- if not $keys }}
{{- fail "scalemcp: auth.mode=api_key needs auth.apiKeys or auth.existingSecret with auth.existingSecretApiKeysKey" }}
{{- end }}
{{- else if $keys }}
{{- fail (printf "scalemcp: API keys (auth.apiKeys or auth.existingSecretApiKeysKey) need auth.mode=api_key (got %s); the server refuses keys it would not check" $a.mode) }}
{{- end }}
{{- if eq $a.mode "jwt" }}
{{- if eq (not $a.jwt.jwksUrl) (not $jwks) }}
{{- fail "scalemcp: auth.mode=jwt needs exactly one of auth.jwt.jwksUrl and auth.existingSecretJwksKey" }}
{{- end }}
{{- $missing := list }}
{{- if not $a.jwt.issuer }}{{ $missing = append $missing "auth.jwt.issuer" }}{{ end }}
{{- if not $a.jwt.resourceUri }}{{ $missing = append $missing "auth.jwt.resourceUri" }}{{ end }}
{{- if not $a.jwt.authorizationServers }}{{ $missing = append $missing "auth.jwt.authorizationServers" }}{{ end }}
{{- if $missing }}
{{- fail (printf "scalemcp: auth.mode=jwt needs %s (the token issuer, this server's public MCP URL as the token audience, and the authorization servers to list in its metadata)" (join ", " $missing)) }}
{{- end }}
{{- else if or $a.jwt.jwksUrl $jwks $a.jwt.issuer $a.jwt.authorizationServers }}
{{- fail (printf "scalemcp: auth.jwt settings and auth.existingSecretJwksKey need auth.mode=jwt (got %s)" $a.mode) }}
{{- end }}
{{- if and $a.requiredScopes (eq $a.mode "none") }}
{{- fail "scalemcp: auth.requiredScopes needs auth.mode api_key or jwt" }}
{{- end }}
{{- end }}

{{/* Redis --------------------------------------------------------------------------------
The URL the server gets in SCALEMCP_REDIS_URL when it is built from values (not given whole):
  standalone  redis[s]://[user[:pw]@]host:port/db
  sentinel    redis[s]+sentinel://[user[:pw]@]sentinel1:port,sentinel2:port/master/db
  cluster     redis[s]+cluster://[user[:pw]@]node1:port,node2:port
The password is "$(REDIS_PASSWORD)": Kubernetes substitutes the REDIS_PASSWORD env var, read
from a Secret, so no password is ever written into the Deployment. Empty when nothing is set.
*/}}

{{- define "scalemcp.redisPasswordRef" -}}
{{- $r := .Values.redis }}
{{- if .Values.redisDemo.enabled }}
{{- else if and $r.existingSecret $r.existingSecretPasswordKey (not $r.existingSecretUrlKey) }}
{{- dict "name" $r.existingSecret "key" $r.existingSecretPasswordKey | toJson }}
{{- else if and $r.password (not $r.url) (not $r.existingSecret) }}
{{- dict "name" (include "scalemcp.secretName" .) "key" "redis-password" | toJson }}
{{- end }}
{{- end }}

{{- define "scalemcp.redisUrl" -}}
{{- $r := .Values.redis }}
{{- $auth := "" }}
{{- if include "scalemcp.redisPasswordRef" . }}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" $r.username }}
{{- else if $r.username }}
{{- $auth = printf "%s@" $r.username }}
{{- end }}
{{- $scheme := ternary "rediss" "redis" $r.tls }}
{{- if .Values.redisDemo.enabled }}
{{- printf "redis://%s-redis:6379/0" (include "scalemcp.fullname" .) }}
{{- else if eq $r.mode "standalone" }}
{{- with $r.standalone.host }}
{{- printf "%s://%s%s:%d/%d" $scheme $auth . (int $r.standalone.port) (int $r.db) }}
{{- end }}
{{- else if eq $r.mode "sentinel" }}
{{- if $r.sentinel.hosts }}
{{- printf "%s+sentinel://%s%s/%s/%d" $scheme $auth (join "," $r.sentinel.hosts) $r.sentinel.masterName (int $r.db) }}
{{- end }}
{{- else if eq $r.mode "cluster" }}
{{- if $r.cluster.nodes }}
{{- printf "%s+cluster://%s%s" $scheme $auth (join "," $r.cluster.nodes) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The env entries that give the server its Redis URL (backend=redis only). */}}
{{- define "scalemcp.redisEnv" -}}
{{- $r := .Values.redis }}
{{- if and $r.url (not .Values.redisDemo.enabled) }}
- name: SCALEMCP_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "scalemcp.secretName" . }}
      key: redis-url
{{- else if and $r.existingSecret $r.existingSecretUrlKey (not .Values.redisDemo.enabled) }}
- name: SCALEMCP_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret }}
      key: {{ $r.existingSecretUrlKey }}
{{- else }}
{{- with include "scalemcp.redisPasswordRef" . }}
{{- $ref := fromJson . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
- name: SCALEMCP_REDIS_URL
  value: {{ include "scalemcp.redisUrl" . | quote }}
{{- end }}
{{- end }}

{{/* The server's scheme inside the pod. */}}
{{- define "scalemcp.scheme" -}}
{{- ternary "https" "http" .Values.server.tls.enabled }}
{{- end }}

{{/* A probe from values: on the metrics port unless it names a port (the MCP port when the
server has none, then HTTPS with in-pod TLS); readiness without a backend (stateless) asks
/healthz, as /readyz would check nothing more. */}}
{{- define "scalemcp.probe" -}}
{{- $probe := deepCopy .probe }}
{{- with $probe.httpGet }}
{{- if not (hasKey . "port") }}
{{- $_ := set . "port" (include "scalemcp.opsPortName" $.root) }}
{{- end }}
{{- if and $.root.Values.server.tls.enabled (eq (toString .port) "http") }}
{{- $_ := set . "scheme" "HTTPS" }}
{{- end }}
{{- if and $.readiness (eq $.root.Values.backend "stateless") (eq .path "/readyz") }}
{{- $_ := set . "path" "/healthz" }}
{{- end }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/* The state key ------------------------------------------------------------------------
Where the pods' requestState key ring comes from, as JSON:
  {"secret": NAME, "key": KEY, "previousKey": KEY or ""}   the Secret keys the pods read
  {}                                                      none: backend=memory, one process,
                                                          which makes a key of its own
From auth.existingSecret; else auth.stateKey (in the chart Secret); else, with
auth.generateStateKey, the generated key (in <fullname>-state-key). */}}
{{- define "scalemcp.stateKeyRef" -}}
{{- $a := .Values.auth }}
{{- $fullname := include "scalemcp.fullname" . }}
{{- if $a.existingSecret }}
{{- dict "secret" $a.existingSecret "key" $a.existingSecretStateKeyKey "previousKey" $a.existingSecretPreviousStateKeysKey | toJson }}
{{- else if or $a.stateKey $a.generateStateKey }}
{{- $secret := ternary $fullname (printf "%s-state-key" $fullname) (not (empty $a.stateKey)) }}
{{- dict "secret" $secret "key" "state-key" "previousKey" (ternary "previous-state-keys" "" (not (empty $a.previousStateKeys))) | toJson }}
{{- else }}
{{- dict | toJson }}
{{- end }}
{{- end }}

{{/* The generated state key: the one kept in the cluster, or a new one on a first install.
Made once per render (kept in .Values, which every template of the chart shares), so the
Secret and the pods' checksum see the same key. An upgrade that finds no key refuses: a new
one would break requestState between old and new pods. */}}
{{- define "scalemcp.generatedStateKey" -}}
{{- if not (hasKey .Values "_scalemcpGeneratedStateKey") }}
{{- $name := printf "%s-state-key" (include "scalemcp.fullname" .) }}
{{- $found := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $key := dig "data" "state-key" "" $found | b64dec }}
{{- if not $key }}
{{- if .Release.IsUpgrade }}
{{- fail (printf "scalemcp: auth.generateStateKey is on, but this upgrade cannot find the generated state key (Secret %s/%s, key state-key); making a new one would break requestState between pods. Either lookup cannot reach the cluster (helm template, --dry-run=client: use --dry-run=server) or the Secret was deleted. Set auth.stateKey or auth.existingSecret instead (to keep the key the pods use now: kubectl -n %s get secret %s -o jsonpath='{.data.state-key}' | base64 -d)" .Release.Namespace $name .Release.Namespace $name) }}
{{- end }}
{{- $key = randAlphaNum 64 }}
{{- end }}
{{- $_ := set .Values "_scalemcpGeneratedStateKey" $key }}
{{- end }}
{{- index .Values "_scalemcpGeneratedStateKey" }}
{{- end }}

{{/* The data of the chart's own Secret, as JSON (values, not base64). */}}
{{- define "scalemcp.secretData" -}}
{{- $data := dict }}
{{- $auth := .Values.auth }}
{{- if not $auth.existingSecret }}
{{- with $auth.stateKey }}
{{- $_ := set $data "state-key" . }}
{{- end }}
{{- with $auth.previousStateKeys }}
{{- $_ := set $data "previous-state-keys" (join "," .) }}
{{- end }}
{{- if $auth.apiKeys }}
{{- $_ := set $data "api-keys" (printf "%s\n" (join "\n" $auth.apiKeys)) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.backend "redis") (not .Values.redisDemo.enabled) }}
{{- if .Values.redis.url }}
{{- $_ := set $data "redis-url" .Values.redis.url }}
{{- else if and .Values.redis.password (not .Values.redis.existingSecret) }}
{{- $_ := set $data "redis-password" .Values.redis.password }}
{{- end }}
{{- end }}
{{- $data | toJson }}
{{- end }}

{{/* What the pods read from Secrets, for the checksum that rolls them when it changes: the
chart's Secret, the generated key, and, where `lookup` reaches the cluster (install and
upgrade, not `helm template`), the keys the pods read from existing Secrets. */}}
{{- define "scalemcp.secretMaterial" -}}
{{- $material := dict "chart" (include "scalemcp.secretData" . | fromJson) }}
{{- $a := .Values.auth }}
{{- if and $a.generateStateKey (not $a.stateKey) (not $a.existingSecret) }}
{{- $_ := set $material "generated" (include "scalemcp.generatedStateKey" .) }}
{{- end }}
{{- $r := .Values.redis }}
{{- $refs := list (list $a.existingSecret (list $a.existingSecretStateKeyKey $a.existingSecretPreviousStateKeysKey $a.existingSecretApiKeysKey $a.existingSecretJwksKey)) }}
{{- if eq .Values.backend "redis" }}
{{- $refs = append $refs (list $r.existingSecret (list $r.existingSecretUrlKey $r.existingSecretPasswordKey)) }}
{{- end }}
{{- range $refs }}
{{- $name := index . 0 }}
{{- if $name }}
{{- $found := lookup "v1" "Secret" $.Release.Namespace $name }}
{{- range $key := index . 1 }}
{{- if $key }}
{{- $_ := set $material (printf "%s/%s" $name $key) (dig "data" $key "" $found) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $material | toJson }}
{{- end }}

{{/* Ports ------------------------------------------------------------------------------- */}}

{{/* The port name probes use: "metrics" when the server has a metrics port. */}}
{{- define "scalemcp.opsPortName" -}}
{{- ternary "http" "metrics" (kindIs "invalid" .Values.server.metricsPort) }}
{{- end }}

{{/* The Redis key prefix of this release. */}}
{{- define "scalemcp.redisKeyPrefix" -}}
{{- .Values.redis.keyPrefix | default (printf "smcp:%s/%s:" .Release.Namespace (include "scalemcp.fullname" .)) }}
{{- end }}

{{/* TCP ports the server may open to Redis, as a JSON list: redisPorts and every port named
in the host lists of the values. */}}
{{- define "scalemcp.redisPorts" -}}
{{- $r := .Values.redis }}
{{- $ports := list }}
{{- range .Values.networkPolicy.egress.redisPorts }}{{ $ports = append $ports (int .) }}{{ end }}
{{- range concat $r.sentinel.hosts $r.cluster.nodes }}
{{- $ports = append $ports (regexFind "[0-9]+$" . | int) }}
{{- end }}
{{- if $r.standalone.host }}{{ $ports = append $ports (int $r.standalone.port) }}{{ end }}
{{- with $r.url }}
{{- $hosts := regexReplaceAll "^[a-z+]+://([^@/]*@)?" . "" | splitList "/" | first }}
{{- range regexFindAll ":[0-9]+" $hosts -1 }}{{ $ports = append $ports (trimPrefix ":" . | int) }}{{ end }}
{{- end }}
{{- $ports | uniq | toJson }}
{{- end }}
