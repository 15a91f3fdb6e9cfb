# Sourced by the test scripts: makes sure a Redis answers on
# $NEXIO_REDIS_URL's default address, starting or installing one if the
# machine has none running. Tests that need Redis skip without it unless
# NEXIO_REQUIRE_REDIS=1.
ensure_redis() {
  if command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "redis-server not found: installing it (apt-get install redis-server)" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) || true
    fi
  fi
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting redis-server on 127.0.0.1:6379" >&2
    mkdir -p /tmp/nexio-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/nexio-redis --logfile /tmp/nexio-redis/redis.log || true
    for _ in $(seq 1 50); do
      redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
      sleep 0.1
    done
  fi
  echo "warning: no Redis on 127.0.0.1:6379; Redis tests will skip (set NEXIO_REQUIRE_REDIS=1 to fail instead)" >&2
}
