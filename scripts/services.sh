# Sourced by scripts/test: makes sure the machine's PostgreSQL, MariaDB and
# Redis answer on 127.0.0.1 (starting the installed servers if they are
# stopped) and exports the URLs the service-backed tests read. With CI=true a
# service that cannot be reached fails the run; otherwise its tests skip.

svc_fail() {
  if [ "${CI:-}" = "true" ]; then
    echo "error: $1 is not available and CI=true: failing instead of skipping" >&2
    exit 1
  fi
  echo "warning: $1 is not available; its tests will be skipped" >&2
}

wait_for() { # name, command…
  local name="$1"; shift
  for _ in $(seq 1 50); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}

ensure_postgres() {
  if ! command -v pg_isready >/dev/null; then svc_fail "PostgreSQL (pg_isready not installed)"; return; fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
  fi
  if wait_for postgres pg_isready -q -h 127.0.0.1 -p 5432; then
    export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  else
    svc_fail "PostgreSQL on 127.0.0.1:5432"
  fi
}

ensure_mariadb() {
  local ping=(mysqladmin --protocol=TCP -h 127.0.0.1 -P 3306 -u root ping)
  if ! command -v mysqladmin >/dev/null; then svc_fail "MariaDB (mysqladmin not installed)"; return; fi
  if ! "${ping[@]}" >/dev/null 2>&1; then
    echo "starting MariaDB"
    if [ -x /usr/sbin/mariadbd ]; then
      start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    fi
  fi
  if wait_for mariadb "${ping[@]}"; then
    export TEST_MYSQL_URL="${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}"
  else
    svc_fail "MariaDB on 127.0.0.1:3306"
  fi
}

ensure_redis() {
  if ! command -v redis-cli >/dev/null; then svc_fail "Redis (redis-cli not installed)"; return; fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/cita-redis.log >/dev/null 2>&1 || true
  fi
  if wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping; then
    export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/}"
  else
    svc_fail "Redis on 127.0.0.1:6379"
  fi
}

# moto's server (SNS, SQS, EventBridge, DynamoDB), from PyPI into a virtual
# environment kept outside the checkout (CITA_MOTO_VENV, by default
# ~/.cache/cita/moto-venv) so later runs reuse it; started on a free loopback
# port and stopped by stop_moto. Exports TEST_AWS_ENDPOINT_URL.
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
ensure_moto() {
  local venv="${CITA_MOTO_VENV:-$HOME/.cache/cita/moto-venv}"
  if [ -n "${TEST_AWS_ENDPOINT_URL:-}" ] && curl -fs "$TEST_AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1; then
    return 0
  fi
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "installing moto[server]==$MOTO_VERSION into $venv"
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"; }; then
      svc_fail "moto (pip install \"moto[server]\")"
      return
    fi
  fi
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  MOTO_LOG="$(mktemp -t cita-moto.XXXXXX.log)"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  if wait_for moto curl -fs "http://127.0.0.1:$port/moto-api/"; then
    export TEST_AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    echo "moto_server $MOTO_VERSION on $TEST_AWS_ENDPOINT_URL (pid $MOTO_PID, log $MOTO_LOG)"
  else
    kill "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=""
    svc_fail "moto_server on 127.0.0.1:$port (log: $MOTO_LOG)"
  fi
}

stop_moto() {
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=""
  fi
}
