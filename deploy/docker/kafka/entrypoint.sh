#!/bin/bash
# Kafka's entrypoint: render /tmp/server.properties from the defaults and KAFKA_* variables,
# format the storage once (KRaft), then run the broker in the foreground. `probe` checks health.
set -euo pipefail
CP="/opt/kafka/libs/*:/opt/kafka/probe"
CONF=/tmp/server.properties

if [[ ${1:-} == probe ]]; then
  # The first PLAINTEXT listener, as advertised (what clients use).
  props=$CONF
  [[ -f $props ]] || exit 1
  addr=$(sed -n 's/^advertised\.listeners=\(PLAINTEXT:\/\/\)\?\([^,]*\).*/\2/p' "$props" | sed 's#^[A-Z_]*://##' | tail -n1)
  exec java -Xmx64m -XX:TieredStopAtLevel=1 -cp "$CP" KafkaReady "$addr" 10 >/dev/null
fi

# KAFKA_* variables override the defaults key by key; a static quorum (controller.quorum.voters,
# as the apache/kafka image is usually configured) replaces the default dynamic one.
declare -A from_env=()
while IFS='=' read -r name value; do
  case $name in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${name#KAFKA_}
  key=${key,,}; key=${key//___/_UNDERSCORE_}; key=${key//__/-}; key=${key//_/.}; key=${key//.underscore./_}
  from_env[$key]=$value
done < <(env)
{
  while IFS= read -r line; do
    key=${line%%=*}
    [[ $line == \#* || -z $line ]] && { echo "$line"; continue; }
    [[ -n ${from_env[$key]+set} ]] && continue
    [[ $key == controller.quorum.bootstrap.servers && -n ${from_env[controller.quorum.voters]+set} ]] && continue
    echo "$line"
  done </opt/kafka/server.properties
  echo "# from the environment"
  for key in "${!from_env[@]}"; do echo "$key=${from_env[$key]}"; done
} >"$CONF"

data=$(sed -n 's/^log\.dirs=//p' "$CONF" | tail -n1)
if [[ ! -f $data/meta.properties ]]; then
  standalone=(--standalone)
  grep -q '^controller\.quorum\.voters=' "$CONF" && standalone=()
  java -cp "$CP" kafka.tools.StorageTool format "${standalone[@]}" \
    -t "${CLUSTER_ID:-$(java -cp "$CP" kafka.tools.StorageTool random-uuid)}" -c "$CONF"
fi
# shellcheck disable=SC2086 # word splitting of the JVM options is intended
exec java $KAFKA_HEAP_OPTS ${KAFKA_OPTS:-} -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -cp "$CP" kafka.Kafka "$CONF"
