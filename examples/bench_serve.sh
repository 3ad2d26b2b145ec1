#!/usr/bin/env bash
# Benchmark: a cached GET issue/{key} through cache_serve, wrk at 32 connections.
# Needs wrk (apt-get install wrk) and the release binaries:
#   cargo build --release --workspace --bins
# BIN_DIR=target/debug runs the debug ones; QUIET=-q turns the access log off.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN_DIR:-$repo/target/release}"
dir=$(mktemp -d)
"$bin/fake-jira" --port 0 --flavor cloud > "$dir/fake.out" 2>/dev/null &
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
curl -s -o "$dir/issue.json" -D - -H "Authorization: $auth" "$url/rest/api/3/issue/ALPHA-1" | grep -i '^x-cache'
curl -s -o /dev/null -D - -H "Authorization: $auth" "$url/rest/api/3/issue/ALPHA-1" | grep -i '^x-cache'
echo "body bytes: $(wc -c < "$dir/issue.json")"
wrk -t2 -c32 -d15s --latency -H "Authorization: $auth" "$url/rest/api/3/issue/ALPHA-1"
kill $serve $fake
wait $serve $fake 2>/dev/null || true
rm -rf "$dir"
