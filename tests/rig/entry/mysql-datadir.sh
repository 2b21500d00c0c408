#!/usr/bin/env bash
# The entry point of the rig's MySQL image as tests/rig/up builds it: the official mysql image
# takes its data directory from a --datadir argument (the database role passes one: a
# subdirectory of the volume, so that a formatted volume's lost+found is not in it), while the
# rig's MariaDB entry point (kept beside this one as docker-entrypoint.rig.sh) always uses
# /var/lib/mysql. This runs the rig's entry point on the directory the arguments name.
set -euo pipefail
datadir=/var/lib/mysql
for arg in "$@"; do
  case $arg in --datadir=*) datadir=${arg#--datadir=} ;; esac
done
mkdir -p "$datadir"
rig=/usr/local/bin/docker-entrypoint.rig.sh
grep -q 'D=/var/lib/mysql;' "$rig" || {
  echo "mysql-datadir.sh: $rig no longer sets D=/var/lib/mysql; this wrapper needs updating" >&2
  exit 1
}
# The official entry point also gives the *.sh scripts of /docker-entrypoint-initdb.d (which it
# sources) docker_process_sql: SQL from stdin, as root over the socket, the password kept out of
# argv. The database role's script for the basic-auth database uses it.
# shellcheck disable=SC2016  # expanded when the rig script runs, not here
prelude='docker_process_sql() {
  mariadb --defaults-extra-file=<(printf "[client]\npassword=\"%s\"\n" "$MYSQL_ROOT_PASSWORD") \
    --protocol=socket --socket=/run/mysqld/mysqld.sock -uroot "$@"
}'
export MYSQL_K8S_DATADIR=$datadir
# shellcheck disable=SC2016  # $MYSQL_K8S_DATADIR expands in the rig script, not here
exec bash -c "$prelude
$(sed 's|D=/var/lib/mysql;|D="$MYSQL_K8S_DATADIR";|' "$rig")" docker-entrypoint.sh "$@"
