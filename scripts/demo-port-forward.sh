#!/usr/bin/env bash
# The article's demo, on a real cluster: apply deploy/, wait for the rollouts, port-forward the master Service,
# send the original example to /compute and a text file to /v1/jobs, print the results, clean up on exit.
#
# Usage: scripts/demo-port-forward.sh [TEXT_FILE]
#   KUBECTL      kubectl command (default: kubectl), e.g. "minikube kubectl --" or "k3s kubectl"
#   NAMESPACE    namespace of deploy/ (default: mapreduce)
#   LOCAL_PORT   local end of the port-forward (default: 8080)
#   KEEP=1       keep the namespace afterwards (default: delete it on exit)
#   MR_API_TOKEN sent as a bearer token if the public API is protected
set -euo pipefail

KUBECTL="${KUBECTL:-kubectl}"
NAMESPACE="${NAMESPACE:-mapreduce}"
LOCAL_PORT="${LOCAL_PORT:-8080}"
KEEP="${KEEP:-0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TEXT_FILE="${1:-}"
BASE="http://127.0.0.1:${LOCAL_PORT}"

read -r -a kubectl <<<"$KUBECTL"   # allow "minikube kubectl --" style commands
k() { "${kubectl[@]}" --namespace "$NAMESPACE" "$@"; }

forward_pid=""
workdir="$(mktemp -d)"
cleanup() {
    local status=$?
    if [[ -n "$forward_pid" ]]; then
        kill "$forward_pid" 2>/dev/null || true
        wait "$forward_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
    if [[ "$KEEP" != 1 ]]; then
        echo "== deleting namespace $NAMESPACE (KEEP=1 keeps it)"
        "${kubectl[@]}" delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

curl_api() {
    local auth=()
    if [[ -n "${MR_API_TOKEN:-}" ]]; then auth=(-H "Authorization: Bearer ${MR_API_TOKEN}"); fi
    curl --silent --show-error --fail-with-body "${auth[@]}" "$@"
}

echo "== applying $ROOT/deploy"
"${kubectl[@]}" apply -k "$ROOT/deploy"

echo "== waiting for the rollouts"
k rollout status deployment/master --timeout=180s
k rollout status statefulset/mapper --timeout=180s
k rollout status statefulset/reducer --timeout=180s

echo "== port-forwarding service/master to $BASE"
# Not through k(): a backgrounded function runs in a subshell, and killing that subshell would leave kubectl running.
"${kubectl[@]}" --namespace "$NAMESPACE" port-forward service/master "${LOCAL_PORT}:http" \
    >"$workdir/port-forward.log" 2>&1 &
forward_pid=$!
for _ in $(seq 1 50); do
    if curl --silent --fail "$BASE/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$forward_pid" 2>/dev/null; then
        cat "$workdir/port-forward.log" >&2
        exit 1
    fi
    sleep 0.2
done
curl --silent --show-error --fail "$BASE/readyz" >/dev/null

echo "== the original example: GET /compute?text=hello+hello+hello+hello+world+world+world"
curl_api "$BASE/compute?text=hello+hello+hello+hello+world+world+world"
echo

if [[ -z "$TEXT_FILE" ]]; then
    TEXT_FILE="$workdir/sample.txt"
    for _ in $(seq 1 2000); do
        echo "the quick brown fox jumps over the lazy dog and the dog sleeps"
    done >"$TEXT_FILE"
fi
echo "== uploading $TEXT_FILE to POST /v1/jobs"
submitted="$(curl_api -H 'Content-Type: text/plain' --data-binary "@$TEXT_FILE" "$BASE/v1/jobs")"
echo "$submitted"
job_id="$(printf '%s' "$submitted" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"

echo "== the ten most frequent words of job $job_id"
curl_api "$BASE/v1/jobs/$job_id/result?wait=120&top=10"
echo
echo "== job status (partitions = reducers when it was planned)"
curl_api "$BASE/v1/jobs/$job_id" | python3 -c \
    'import json, sys; s = json.load(sys.stdin); print({k: s[k] for k in ("state", "partitions", "mappers", "reducers")})'
