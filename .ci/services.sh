#!/usr/bin/env bash
# Start throw-away Redis and PostgreSQL servers on loopback ports for the distributed QC tests, and
# export KESTREL_TEST_REDIS_URL / KESTREL_TEST_POSTGRES_URL. Source it, then call `services_start`;
# `services_stop` ends both and removes their data folders. Installs the Debian packages when missing
# and INSTALL_SERVICES=1 (CI runs as root).
services_find_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return 0; }; done
  return 1
}

services_install() {
  if command -v redis-server >/dev/null && services_find_pg_bin >/dev/null; then return 0; fi
  if [ "${INSTALL_SERVICES:-0}" != 1 ] || [ "$(id -u)" != 0 ]; then
    echo "services: redis-server or postgresql missing (not installing outside CI); the distributed tests will skip" >&2
    return 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server postgresql >/dev/null
}

services_free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

services_start() {
  services_install || return 0
  SERVICES_DIR=$(mktemp -d /tmp/kestrel-services.XXXXXX)
  chmod 755 "$SERVICES_DIR"
  local rport pport pgbin
  rport=$(services_free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$SERVICES_DIR" \
    --daemonize yes --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log"
  pgbin=$(services_find_pg_bin)
  pport=$(services_free_port)
  mkdir -p "$SERVICES_DIR/pg"
  local as=()
  # initdb refuses to run as root: run PostgreSQL as the postgres user when we are root.
  if [ "$(id -u)" = 0 ]; then chown postgres "$SERVICES_DIR/pg"; as=(runuser -u postgres --); fi
  "${as[@]}" "$pgbin/initdb" -D "$SERVICES_DIR/pg/data" -U postgres --auth=trust >/dev/null
  "${as[@]}" "$pgbin/pg_ctl" -D "$SERVICES_DIR/pg/data" -l "$SERVICES_DIR/pg/log" -w \
    -o "-p $pport -c listen_addresses=127.0.0.1 -k $SERVICES_DIR/pg" start >/dev/null
  for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export KESTREL_TEST_REDIS_URL="redis://127.0.0.1:$rport"
  export KESTREL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pport/postgres"
  SERVICES_PG_BIN=$pgbin
  SERVICES_AS=("${as[@]}")
  echo "services: redis on $KESTREL_TEST_REDIS_URL, postgresql on $KESTREL_TEST_POSTGRES_URL" >&2
}

services_stop() {
  [ -n "${SERVICES_DIR:-}" ] || return 0
  [ -f "$SERVICES_DIR/redis.pid" ] && kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true
  "${SERVICES_AS[@]}" "$SERVICES_PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$SERVICES_DIR"
  SERVICES_DIR=
}
