#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster:
#
#   scripts/with-postgres.sh .venv/bin/pytest tests/webadmin -q
#
# Installs Debian's `postgresql` when it is missing (needs root), creates a cluster in a
# temporary directory owned by the `postgres` user, listening only on 127.0.0.1 on a free
# port (and on a unix socket inside that directory), creates a database with a random
# password, exports KVM_TEST_POSTGRES_URL=postgresql+psycopg://..., runs the command, and
# always stops the cluster and removes the directory. Exits with the command's status.
# The cluster trades durability for speed (fsync off): it is for tests only.
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

log() { printf '[with-postgres] %s\n' "$*" >&2; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

BIN=$(pg_bin)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "with-postgres: PostgreSQL is not installed and this is not root:" \
             "apt-get install postgresql" >&2
        exit 2
    fi
    log "installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    BIN=$(pg_bin)
fi
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "with-postgres: no initdb under /usr/lib/postgresql/*/bin" >&2
    exit 2
fi

# initdb and postgres refuse to run as root: run them as `postgres` (or as ourselves).
if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        echo "with-postgres: the postgres user is missing (install postgresql)" >&2
        exit 2
    fi
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
DB=kvm_test
DIR=$(mktemp -d /tmp/kvm-pg.XXXXXX)
started=0

cleanup() {
    local status=$?
    if [ "$started" = 1 ]; then
        as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
chmod 700 "$DIR"
printf '%s\n' "$PASSWORD" > "$DIR/pwfile"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR/pwfile"

log "initdb in $DIR ($BIN)"
as_pg "$BIN/initdb" -D "$DIR/data" -U kvm --pwfile="$DIR/pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || {
    cat "$DIR/initdb.log" >&2
    exit 2
}
rm -f "$DIR/pwfile"

OPTS="-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR"
OPTS="$OPTS -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
OPTS="$OPTS -c max_connections=200 -c shared_buffers=64MB"
started=1
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -o "$OPTS" -w -t 60 start >/dev/null || {
    cat "$DIR/server.log" >&2
    exit 2
}
PGPASSWORD=$PASSWORD "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U kvm -d postgres \
    -c "CREATE DATABASE $DB" >/dev/null

export KVM_TEST_POSTGRES_URL="postgresql+psycopg://kvm:$PASSWORD@127.0.0.1:$PORT/$DB"
log "PostgreSQL on 127.0.0.1:$PORT, database $DB; running: $*"
set +e
"$@"
status=$?
set -e
exit "$status"
