#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis are installed and running on this machine (Debian/Ubuntu), and
# OpenSSL's headers for the build: installs them with apt when missing, starts them when stopped, and lets the `postgres` user
# connect over 127.0.0.1 without a password when the cluster was installed here.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The outgoing HTTP and SMTP clients use the system's TLS (OpenSSL) and trust store.
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev pkg-config ca-certificates)
fresh_pg=no
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  [[ " ${missing[*]} " == *" postgresql "* ]] && fresh_pg=yes
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
if [ "$fresh_pg" = yes ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "cowans-dev" "$hba"; then
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust # cowans-dev\nhost all postgres ::1/128 trust # cowans-dev' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not accepting connections on 127.0.0.1:5432" >&2; exit 1; }

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/cowans-dev.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }
echo "services ready: postgres 127.0.0.1:5432, redis 127.0.0.1:6379"
