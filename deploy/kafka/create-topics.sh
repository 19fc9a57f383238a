#!/usr/bin/env bash
# Creates the OpenSMM topics (and their dead-letter topics) on a broker whose
# auto-creation is off. Idempotent: `--if-not-exists`, so every `docker compose
# up` may run it again. Keep in step with shared/topics.py (the registry);
# .ci/validate-deploy checks that the two agree.
set -euo pipefail

KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
PREFIX="${SMM_TOPIC_PREFIX:-}"
REPLICATION_FACTOR="${TOPIC_REPLICATION_FACTOR:-1}"
RETENTION_MS="${TOPIC_RETENTION_MS:-604800000}" # 7 days

# name partitions (every main topic gets "<name>.dlq" with 1 partition)
TOPICS=(
  "smm.mentions.v1 12"
  "smm.posts.v1 6"
  "smm.inbox.v1 6"
)

create() {
  "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" \
    --create --if-not-exists \
    --topic "$1" --partitions "$2" --replication-factor "$REPLICATION_FACTOR" \
    --config "retention.ms=$RETENTION_MS"
}

for entry in "${TOPICS[@]}"; do
  read -r name partitions <<<"$entry"
  create "$PREFIX$name" "$partitions"
  create "$PREFIX$name.dlq" 1
done

"$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe \
  --topic "${PREFIX}smm\\..*" | grep -E '^Topic:' || true
echo "topics ready"
