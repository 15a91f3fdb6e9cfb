# Sourced by the test scripts: makes sure a NATS server with JetStream
# answers on $NEXIO_NATS_URL's default address (127.0.0.1:4222),
# starting or installing one if the machine has none running. Tests that
# need NATS skip without it unless NEXIO_REQUIRE_NATS=1.
nats_up() {
  (exec 3<>/dev/tcp/127.0.0.1/4222) >/dev/null 2>&1
}
ensure_nats() {
  if nats_up; then
    return 0
  fi
  if ! command -v nats-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "nats-server not found: installing it (apt-get install nats-server)" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null) || true
    fi
  fi
  if command -v nats-server >/dev/null 2>&1; then
    echo "starting nats-server -js on 127.0.0.1:4222" >&2
    mkdir -p /tmp/nexio-nats
    (nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nexio-nats -l /tmp/nexio-nats/nats.log >/dev/null 2>&1 &)
    for _ in $(seq 1 50); do
      nats_up && return 0
      sleep 0.1
    done
  fi
  echo "warning: no NATS on 127.0.0.1:4222; NATS tests will skip (set NEXIO_REQUIRE_NATS=1 to fail instead)" >&2
}
