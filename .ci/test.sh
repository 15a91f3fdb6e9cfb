#!/usr/bin/env bash
# make test: go vet, then every test with the race detector and coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/redis.sh
ensure_redis
source .ci/nats.sh
ensure_nats

go vet ./...
go test -race -count=1 -timeout 15m -coverpkg=./... -coverprofile=/tmp/nexio-cover.out ./...
echo "total coverage: $(go tool cover -func=/tmp/nexio-cover.out | tail -1 | awk '{print $NF}')"
