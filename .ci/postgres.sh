# A Postgres server for the run store's tests, sourced by .ci/run (bash):
#
#   source .ci/postgres.sh
#
# leaves a server on 127.0.0.1:$port with trust authentication and a database `test`,
# and exports OPERONX_REQUIRE_POSTGRES=1 and OPERONX_TEST_POSTGRES_URL for the tests.
#
# A server already answering on the port is used (the database `test` is created when
# only it is missing). Otherwise one is started: the Postgres binaries are installed when
# there are none (apt-get), a fresh cluster is made in $OPERONX_CI_PG_DATA (default
# target/ci-pg) and started on the port, as an unprivileged user (Postgres refuses to
# run as root), and stopped when the sourcing shell exits.
#
# Settings: OPERONX_CI_PG_PORT (default 5432), OPERONX_CI_PG_DATA (default target/ci-pg).

ci_pg_port="${OPERONX_CI_PG_PORT:-5432}"
ci_pg_data="${OPERONX_CI_PG_DATA:-$PWD/target/ci-pg}"

ci_pg_log() { echo "postgres.sh: $*" >&2; }

# The path of Postgres program $1: on PATH, or in the newest /usr/lib/postgresql/*/bin.
ci_pg_bin() {
    if command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
        return 0
    fi
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$found" ] && echo "$found"
}

ci_pg_ready() {
    local isready
    isready="$(ci_pg_bin pg_isready)" || return 1
    "$isready" -q -h 127.0.0.1 -p "$ci_pg_port" >/dev/null 2>&1
}

# psql as user postgres on the port, database $1, then psql's other arguments.
ci_pg_psql() {
    local db="$1" psql
    shift
    psql="$(ci_pg_bin psql)" || return 1
    "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$ci_pg_port" -U postgres -d "$db" "$@"
}

# Whether database `test` answers; creates it when the server answers but it is missing.
ci_pg_usable() {
    ci_pg_psql test -c 'select 1' >/dev/null 2>&1 && return 0
    ci_pg_psql postgres -c 'select 1' >/dev/null 2>&1 || return 1
    ci_pg_log "creating database test on port $ci_pg_port"
    ci_pg_psql postgres -c 'CREATE DATABASE test' >/dev/null && ci_pg_psql test -c 'select 1' >/dev/null
}

# Run a command as root (directly, or through sudo).
ci_pg_as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        ci_pg_log "need root to run: $*"
        return 1
    fi
}

ci_pg_install() {
    ci_pg_log "no Postgres binaries: installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    ci_pg_as_root apt-get install -y -q postgresql >/dev/null ||
        { ci_pg_as_root apt-get update -q >/dev/null && ci_pg_as_root apt-get install -y -q postgresql >/dev/null; }
}

# Run a command as the user the cluster belongs to (this one, unless root: then `postgres`,
# created when missing).
ci_pg_as_owner() {
    if [ "$(id -u)" != 0 ]; then
        "$@"
        return
    fi
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /bin/sh postgres
    fi
    if command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

ci_pg_stop() {
    [ -n "${ci_pg_started:-}" ] || return 0
    ci_pg_as_owner "$ci_pg_ctl" -D "$ci_pg_data" -m fast -w stop >/dev/null 2>&1 || true
    ci_pg_started=
    if [ -n "${ci_pg_temp_data:-}" ]; then
        rm -rf "$ci_pg_data"
    fi
}

ci_pg_start() {
    local initdb
    if ! initdb="$(ci_pg_bin initdb)" || ! ci_pg_ctl="$(ci_pg_bin pg_ctl)"; then
        ci_pg_install || return 1
        initdb="$(ci_pg_bin initdb)" && ci_pg_ctl="$(ci_pg_bin pg_ctl)" || {
            ci_pg_log "postgresql installed but initdb/pg_ctl not found"
            return 1
        }
        # The package may have started a server of its own on the port.
        if ci_pg_ready; then
            ci_pg_usable && return 0
            ci_pg_log "a server answers on port $ci_pg_port but not as user postgres without a password (trust)"
            return 1
        fi
    fi
    rm -rf "$ci_pg_data"
    mkdir -p "$ci_pg_data"
    if [ "$(id -u)" = 0 ]; then
        ci_pg_as_owner true # creates the user when missing
        chown postgres "$ci_pg_data"
        if ! ci_pg_as_owner test -w "$ci_pg_data"; then
            # The checkout is not reachable by user postgres (a private home folder).
            rm -rf "$ci_pg_data"
            ci_pg_data="$(mktemp -d /tmp/operonx-ci-pg.XXXXXX)"
            ci_pg_temp_data=1
            chown postgres "$ci_pg_data"
        fi
    fi
    chmod 0700 "$ci_pg_data"
    ci_pg_log "starting a server on 127.0.0.1:$ci_pg_port (data in $ci_pg_data)"
    ci_pg_as_owner "$initdb" -D "$ci_pg_data" --auth=trust -U postgres -E UTF8 --no-sync >/dev/null || return 1
    ci_pg_started=1
    trap ci_pg_stop EXIT
    ci_pg_as_owner "$ci_pg_ctl" -D "$ci_pg_data" -l "$ci_pg_data/server.log" -w -t 60 \
        -o "-k /tmp -c listen_addresses=127.0.0.1 -p $ci_pg_port" start >/dev/null || {
        cat "$ci_pg_data/server.log" >&2 || true
        return 1
    }
    ci_pg_psql postgres -c 'CREATE DATABASE test' >/dev/null
}

ci_pg_main() {
    if ci_pg_ready; then
        if ci_pg_usable; then
            ci_pg_log "using the server on 127.0.0.1:$ci_pg_port"
            return 0
        fi
        ci_pg_log "a server answers on 127.0.0.1:$ci_pg_port but database test is not usable as user postgres without a password"
        return 1
    fi
    ci_pg_start
}

if ! ci_pg_main; then
    ci_pg_log "no usable Postgres server for the tests"
    return 1 2>/dev/null || exit 1
fi

export OPERONX_REQUIRE_POSTGRES=1
export OPERONX_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$ci_pg_port/test"
