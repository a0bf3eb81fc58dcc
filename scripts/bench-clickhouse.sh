#!/usr/bin/env bash
# The colony's poll cycle into DuckDB and into ClickHouse in one run
# (crates/coral-colony/benches/poll_cycle.rs), or with BENCH=query_latency
# the query latency over a day of a fleet on both: starts Debian's
# clickhouse-server on loopback ports with its data in a temporary
# directory, runs the benchmark with CLICKHOUSE_URL and CLICKHOUSE_PID set,
# stops the server. AGENTS, SPANS, PAGE_SIZE and MAX_CONCURRENT pass through.
#
#   scripts/bench-clickhouse.sh                   # 100 agents x 60,000 spans
#   AGENTS=10 SPANS=6000 scripts/bench-clickhouse.sh
#   BENCH=query_latency scripts/bench-clickhouse.sh  # 200 agents x 24 h
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER="$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)"
[ -x "$SERVER" ] || { echo "clickhouse-server is not installed: apt-get install clickhouse-server" >&2; exit 1; }
DIR="$(mktemp -d)"
HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-18123}"
TCP_PORT="${CLICKHOUSE_TCP_PORT:-19000}"
cat >"$DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$DIR/server.log</log><errorlog>$DIR/error.log</errorlog></logger>
  <http_port>$HTTP_PORT</http_port>
  <tcp_port>$TCP_PORT</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$DIR/data/</path>
  <tmp_path>$DIR/data/tmp/</tmp_path>
  <user_files_path>$DIR/data/user_files/</user_files_path>
  <format_schema_path>$DIR/data/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
</yandex>
XML
cat >"$DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
"$SERVER" --config-file="$DIR/config.xml" >"$DIR/stdout.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/ping" >/dev/null && break
    kill -0 $PID 2>/dev/null || { cat "$DIR/stdout.log" "$DIR/error.log" >&2; exit 1; }
    sleep 0.2
done
echo "clickhouse-server $(curl -s "http://127.0.0.1:$HTTP_PORT/?query=SELECT%20version()") on port $HTTP_PORT (pid $PID)"
export CLICKHOUSE_URL="http://127.0.0.1:$HTTP_PORT" CLICKHOUSE_PID=$PID
export CARGO_TARGET_DIR="${RELEASE_TARGET_DIR:-$HOME/.cache/coral/release-target}"
cargo bench --workspace --locked --bench "${BENCH:-poll_cycle}"
