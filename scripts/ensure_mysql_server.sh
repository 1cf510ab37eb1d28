#!/usr/bin/env bash
# Make sure a MySQL-compatible server binary exists for the throwaway server of the local stack.
# Skipped when MIGRATION_MYSQL_URL points at an existing server.
set -euo pipefail
if [[ -n "${MIGRATION_MYSQL_URL:-}" ]]; then exit 0; fi
export PATH="$PATH:/usr/sbin:/usr/local/sbin"
if command -v mariadbd >/dev/null || command -v mysqld >/dev/null; then exit 0; fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
  echo "[setup] installing mariadb-server (no mariadbd/mysqld found)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
  # The package may start a system service; the local stack never uses it.
  exit 0
fi
cat >&2 <<'MSG'
No MySQL-compatible server found (mariadbd or mysqld) and MIGRATION_MYSQL_URL is not set.
Install one, for example:   sudo apt-get install -y mariadb-server
or point MIGRATION_MYSQL_URL at an existing server: mysql://user:password@host:3306/migration
MSG
exit 1
