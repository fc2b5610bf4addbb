#!/bin/sh
# Starts the Shoal process of this pod: `start.sh storage` in a pod of the storage StatefulSet,
# `start.sh router` in a router pod. Everything comes from the environment the manifests set: the
# shoal-config ConfigMap (shoal.env), through the downward API POD_NAME and POD_NAMESPACE, and for
# routers SHOAL_ROUTERS (the Deployment's replica count, copied by kustomization.yaml).
set -eu

# The stable DNS name of storage pod N, through the headless Service.
storage_address() {
  echo "${SHOAL_STORAGE_NAME}-$1.${SHOAL_STORAGE_NAME}.${POD_NAMESPACE}.svc.${SHOAL_CLUSTER_DOMAIN}:${SHOAL_GRPC_PORT}"
}

# The meta group: storage pods 0 .. SHOAL_META_NODES-1, which are nodes 1 .. SHOAL_META_NODES.
# `meta_addresses with_ids` gives `1=addr,2=addr,...` (shoal node --meta-peers), `meta_addresses plain`
# gives `addr,addr,...` (shoal router --meta).
meta_addresses() {
  list=""
  ordinal=0
  while [ "$ordinal" -lt "$SHOAL_META_NODES" ]; do
    address="$(storage_address "$ordinal")"
    if [ "$1" = with_ids ]; then address="$((ordinal + 1))=$address"; fi
    list="${list:+$list,}$address"
    ordinal=$((ordinal + 1))
  done
  echo "$list"
}

case "${1:-}" in
  storage)
    # A StatefulSet pod is named <statefulset>-<ordinal>; node ids start at 1 (Raft ids), so ordinal + 1.
    ordinal="${POD_NAME##*-}"
    case "$ordinal" in
      '' | *[!0-9]*)
        echo "start.sh: pod name \"$POD_NAME\" does not end in a StatefulSet ordinal" >&2
        exit 64
        ;;
    esac
    exec shoal node \
      --node-id "$((ordinal + 1))" \
      --listen "0.0.0.0:${SHOAL_GRPC_PORT}" \
      --advertise "$(storage_address "$ordinal")" \
      --data-dir "$SHOAL_DATA_DIR" \
      --meta-peers "$(meta_addresses with_ids)" \
      --ops-host 0.0.0.0 \
      --ops-port "$SHOAL_OPS_PORT"
    ;;
  router)
    exec shoal router \
      --meta "$(meta_addresses plain)" \
      --routers "${SHOAL_ROUTERS:-1}" \
      --host 0.0.0.0 \
      --port "$SHOAL_DYNAMODB_PORT" \
      --ops-host 0.0.0.0 \
      --ops-port "$SHOAL_OPS_PORT"
    ;;
  *)
    echo "usage: start.sh storage|router" >&2
    exit 64
    ;;
esac
