#!/usr/bin/env bash
# Client CPU per request of the bench's HTTP clients (raw, h11, httpx) against the floor target.
# Usage: bash bench/compare_clients.sh [python]   (run from the repository root)
set -euo pipefail
PY=${1:-python}
"$PY" bench/targets/floor_server.py > /tmp/floor-compare.out 2>/dev/null &
SERVER=$!
trap 'kill $SERVER' EXIT
until grep -q PORT /tmp/floor-compare.out 2>/dev/null; do sleep 0.1; done
URL="http://127.0.0.1:$(awk '{print $2}' /tmp/floor-compare.out)/mcp"
for load in "" "--rate 1000"; do
  for client in raw h11 httpx; do
    for http in "" "--http2"; do
      [ "$client" = h11 ] && [ -n "$http" ] && continue   # h11 and raw share the h2 client
      printf '%-6s %-8s %-12s ' "$client" "${http:---http1}" "${load:-closed}"
      "$PY" -m scalemcp.bench.cli "$URL" --era modern -c 20 -d 5 --warmup 1 --client "$client" \
        $http $load --json /tmp/compare.json -q || true
      "$PY" -c "import json; r = json.load(open('/tmp/compare.json'));
print(f\"{r['throughput_rps']:7.0f} req/s  p50 {r['latency']['p50_us']/1000:6.2f} ms  \" \
      f\"client {r['client_cpu']['us_per_request']:5.0f} us/req\")"
    done
  done
done
