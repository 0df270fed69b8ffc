#!/usr/bin/env bash
# Make the pgvector extension available in the machine's running PostgreSQL
# and enabled in template1 (so every database created later, including the
# test databases pytest-django creates, already has it).
#
# Fast path: if the server already offers `vector`, only run
# CREATE EXTENSION IF NOT EXISTS in template1.
#
# Slow path (Debian 12 has no pgvector package for its PostgreSQL 15):
# build Debian trixie's `pgvector` source package against the bookworm
# postgresql-server-dev-N that matches the running server exactly. The source
# is fetched through a temporary deb-src list derived from this machine's own
# apt configuration; the machine's apt sources are never edited.
#
# Connection: PGHOST / PGPORT / PGUSER (defaults 127.0.0.1 / 5432 / postgres);
# the user must be a superuser (CREATE EXTENSION vector needs it).
# Needs root for the slow path (apt-get install, make install).
set -euo pipefail

PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
SOURCE_SUITE="${PGVECTOR_SOURCE_SUITE:-trixie}"
DEBIAN_SOURCES="${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
SCRATCH_DB="pgvector_selftest_$$"

log() { printf '[install_pgvector] %s\n' "$*"; }
die() { printf '[install_pgvector] ERROR: %s\n' "$*" >&2; exit 1; }

# -X: ignore ~/.psqlrc so output is predictable; -At: bare values.
psql_q() {
    local db="$1"; shift
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$db" "$@"
}

vector_available() {
    [ "$(psql_q template1 -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")" = "1" ]
}

enable_in_template1() {
    psql_q template1 -c 'CREATE EXTENSION IF NOT EXISTS vector'
    log "vector $(psql_q template1 -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'") enabled in template1"
}

# Print the base URIs of the main Debian archive (not -security / -updates
# suites, which never carry a plain "trixie" suite) from the deb822 sources
# file, falling back to one-line sources.list entries.
debian_archive_uris() {
    if [ -r "$DEBIAN_SOURCES" ]; then
        awk '
            function flush() {
                if (uris != "" && plain) { n = split(uris, u, /[ \t]+/); for (i = 1; i <= n; i++) if (u[i] != "") print u[i] }
                uris = ""; plain = 0
            }
            /^[ \t]*$/ { flush(); next }
            /^#/ { next }
            tolower($1) == "uris:" { sub(/^[^:]*:[ \t]*/, ""); uris = $0; next }
            tolower($1) == "suites:" {
                for (i = 2; i <= NF; i++) if ($i !~ /[-\/]/) plain = 1
                next
            }
            END { flush() }
        ' "$DEBIAN_SOURCES"
    fi
    if [ -r /etc/apt/sources.list ]; then
        # "deb [opts] URI suite comps": keep URIs whose suite has no "-" (main archive).
        sed -e 's/\[[^]]*\]//' /etc/apt/sources.list \
            | awk '$1 == "deb" && $3 !~ /[-\/]/ { print $2 }'
    fi
}

build_and_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install pgvector for PostgreSQL $PG_MAJOR by other means"
    [ "$(id -u)" = 0 ] || die "building pgvector needs root (apt-get install, make install)"

    local server_pkg="postgresql-$PG_MAJOR"
    local server_version
    server_version="$(dpkg-query -W -f='${Version}' "$server_pkg" 2>/dev/null)" \
        || die "$server_pkg is not installed as a Debian package; cannot match postgresql-server-dev-$PG_MAJOR to it"

    # A machine that never ran `apt-get update` has no package lists to install from.
    if ! apt-cache show "postgresql-server-dev-$PG_MAJOR=$server_version" >/dev/null 2>&1; then
        log "postgresql-server-dev-$PG_MAJOR=$server_version not in the package lists; running apt-get update"
        apt-get update -qq >/dev/null
    fi
    # Pin the dev package to the exact server version: an unpinned install
    # could pull a newer postgresql-$PG_MAJOR and restart the running server.
    log "installing build deps (postgresql-server-dev-$PG_MAJOR=$server_version)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "postgresql-server-dev-$PG_MAJOR=$server_version" build-essential dpkg-dev >/dev/null

    local pg_config="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
    [ -x "$pg_config" ] || die "$pg_config missing after installing postgresql-server-dev-$PG_MAJOR"

    WORKDIR="$(mktemp -d /tmp/pgvector-build.XXXXXX)"
    trap 'rm -rf "$WORKDIR"' EXIT
    mkdir -p "$WORKDIR/lists/partial" "$WORKDIR/src"

    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local uris
    uris="$(debian_archive_uris | awk '!seen[$0]++')"
    [ -n "$uris" ] || die "no Debian archive URI found in $DEBIAN_SOURCES or /etc/apt/sources.list"
    local uri
    for uri in $uris; do
        echo "deb-src [signed-by=$keyring] $uri $SOURCE_SUITE main"
    done > "$WORKDIR/sources.list"

    # Everything apt reads or writes for this fetch lives in $WORKDIR: the
    # machine's lists and package caches stay untouched.
    local apt_opts=(
        -o "Dir::Etc::SourceList=$WORKDIR/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$WORKDIR/lists"
        -o "Dir::Cache::pkgcache=$WORKDIR/pkgcache.bin"
        -o "Dir::Cache::srcpkgcache=$WORKDIR/srcpkgcache.bin"
        -o "APT::Sandbox::User=root"
    )
    log "fetching $SOURCE_SUITE source package pgvector (temporary deb-src list)"
    apt-get "${apt_opts[@]}" update -qq >/dev/null
    (cd "$WORKDIR/src" && apt-get "${apt_opts[@]}" source -qq pgvector >/dev/null 2>"$WORKDIR/source.err") \
        || { cat "$WORKDIR/source.err" >&2; die "apt-get source pgvector failed"; }

    local srcdir
    srcdir="$(find "$WORKDIR/src" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
    [ -n "$srcdir" ] || die "apt-get source produced no pgvector-* directory"
    log "building $(basename "$srcdir") against PostgreSQL $PG_MAJOR"
    make -C "$srcdir" -s -j"$(nproc)" PG_CONFIG="$pg_config" >/dev/null
    make -C "$srcdir" -s install PG_CONFIG="$pg_config" >/dev/null
}

# Exercise the type and an HNSW index so a broken build is caught here, not
# in the middle of a test run. The scratch database comes from template1, so
# this also proves new databases inherit the extension.
self_test() {
    psql_q postgres -c "DROP DATABASE IF EXISTS $SCRATCH_DB" -c "CREATE DATABASE $SCRATCH_DB"
    local nearest
    nearest="$(psql_q "$SCRATCH_DB" <<'SQL'
CREATE TABLE items (id int PRIMARY KEY, embedding vector(3));
INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0,1]');
CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops);
SET enable_seqscan = off;
SELECT id FROM items ORDER BY embedding <=> '[0.1,0.9,0]' LIMIT 1;
SQL
)" || { psql_q postgres -c "DROP DATABASE IF EXISTS $SCRATCH_DB"; die "self-test query failed"; }
    psql_q postgres -c "DROP DATABASE $SCRATCH_DB"
    [ "$nearest" = "2" ] || die "self-test: expected nearest id 2, got '$nearest'"
    log "self-test ok (vector type + hnsw index)"
}

main() {
    pg_isready -q -h "$PGHOST" -p "$PGPORT" \
        || die "PostgreSQL at $PGHOST:$PGPORT is not accepting connections"
    PG_MAJOR="$(psql_q template1 -c 'SHOW server_version_num')"
    PG_MAJOR=$((PG_MAJOR / 10000))

    if vector_available; then
        log "vector already offered by PostgreSQL $PG_MAJOR"
        enable_in_template1
        exit 0
    fi

    build_and_install
    vector_available || die "vector still not in pg_available_extensions after make install"
    enable_in_template1
    self_test
}

main "$@"
