#!/usr/bin/env bash
# Benchmark: a cached GET issue/{key} through cache_serve, wrk at 32 connections.
# Needs wrk (apt-get install wrk) and the release binaries:
#   cargo build --release --workspace --bins
# BIN_DIR=target/debug runs the debug ones; QUIET=-q turns the access log off;
# RATE=10000 also measures the latency at that rate with oha (cargo install oha).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN_DIR:-$repo/target/release}"
dir=$(mktemp -d)
# A generated site whose issues are ~3 KB (issue 17's target), as bench_warm's are.
"$bin/fake-jira" --port 0 --flavor cloud --generated --projects 1 --issues-per-project 2 \
    --issue-bytes "${ISSUE_BYTES:-3072}" > "$dir/fake.out" 2>/dev/null &
fake=$!
for _ in $(seq 100); do [ -s "$dir/fake.out" ] && break; sleep 0.1; done
site=$(grep -o 'http://[0-9.:]*' "$dir/fake.out" | head -1)
mkdir -p "$dir/cache"
cat > "$dir/profiles.toml" <<TOML
[profiles.bench]
url = "$site"
deployment = "cloud"
email = "bot@example.com"
rate_limit = "unlimited"
cache_dir = "$dir/cache"
TOML
export JIRA_API_TOKEN=cloud-token-123
"$bin/cache_serve" --config "$dir/profiles.toml" --profile bench --listen 127.0.0.1:0 ${QUIET:-} > "$dir/serve.out" 2>/dev/null &
serve=$!
for _ in $(seq 100); do [ -s "$dir/serve.out" ] && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$dir/serve.out" | tail -1)   # the last: the first is the site
auth="Basic $(printf 'bot@example.com:cloud-token-123' | base64 -w0)"
# The first issue of the site's first project, asked of the site itself.
project=$(curl -s -H "Authorization: $auth" "$site/rest/api/3/project" | grep -o '"key":"[A-Z0-9]*"' | head -1 | cut -d'"' -f4)
issue="$project-1"
curl -s -o "$dir/issue.json" -D - -H "Authorization: $auth" "$url/rest/api/3/issue/$issue" | grep -i '^x-cache'
curl -s -o /dev/null -D - -H "Authorization: $auth" "$url/rest/api/3/issue/$issue" | grep -i '^x-cache'
echo "issue $issue, body bytes: $(wc -c < "$dir/issue.json")"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cpu_before=$(awk '{print $14+$15}' /proc/$serve/stat)
# One wrk thread by default: on a 2-core machine, two wrk threads and the
# server's two workers are four busy threads on two cores, and the p99 then
# measures how long a ready thread waits for a core (2.5-3.2 ms), not the server.
wrk -t"${WRK_THREADS:-1}" -c32 -d15s --latency -H "Authorization: $auth" "$url/rest/api/3/issue/$issue"
echo "cache_serve CPU during the run: $(( $(awk '{print $14+$15}' /proc/$serve/stat) - cpu_before )) ticks of $(getconf CLK_TCK)/s"
# The latency at a fixed rate rather than at saturation: `oha` (cargo
# install oha) sends RATE requests/s over the same 32 connections and, with
# --latency-correction, counts each request's latency from when it was due,
# so a stall is not hidden by the requests it held back.
if [ -n "${RATE:-}" ] && command -v oha >/dev/null; then
    echo "oha at ${RATE} requests/s, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    oha -z 15s -c 32 -q "$RATE" --latency-correction --no-tui \
        -H "Authorization: $auth" "$url/rest/api/3/issue/$issue"
fi
kill $serve $fake
wait $serve $fake 2>/dev/null || true
rm -rf "$dir"
