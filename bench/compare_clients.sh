#!/usr/bin/env bash
# Client CPU per request of the bench's HTTP clients (raw, httpx; HTTP/1.1 and HTTP/2) against
# the floor target. Usage: bash bench/compare_clients.sh [python] [client ...]
# (run from the repository root; clients default to "raw httpx")
set -euo pipefail
PY=${1:-python}
shift || true
CLIENTS=${*:-raw httpx}
TMP=$(mktemp -d)
"$PY" bench/targets/floor_server.py > "$TMP/server.out" 2>"$TMP/server.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
until grep -q PORT "$TMP/server.out" 2>/dev/null; do
  kill -0 $SERVER 2>/dev/null || { echo "floor server failed:" >&2; cat "$TMP/server.err" >&2; exit 1; }
  sleep 0.1
done
URL="http://127.0.0.1:$(awk '{print $2}' "$TMP/server.out")/mcp"
for load in "" "--rate 1000"; do
  for client in $CLIENTS; do
    for http in "" "--http2"; do
      printf '%-6s %-8s %-12s ' "$client" "${http:---http1}" "${load:-closed}"
      "$PY" -m scalemcp.loadgen.cli "$URL" --era modern -c 20 -d 5 --warmup 1 --client "$client" \
        $http $load --json "$TMP/report.json" -q || true
      "$PY" -c "import json, sys; r = json.load(open(sys.argv[1]));
print(f\"{r['throughput_rps']:7.0f} req/s  p50 {r['latency']['p50_us']/1000:6.2f} ms  \" \
      f\"client {r['client_cpu']['us_per_request']:5.0f} us/req\")" "$TMP/report.json"
    done
  done
done
