#!/usr/bin/env bash
# The article's demo, on a real cluster: apply deploy/overlays/dev, wait for the rollouts, port-forward the master
# Service, and drive it with the mapreduce command (no curl): the original example, a text file uploaded with
# `mapreduce submit --wait`, the job list and the job's status; clean up on exit.
usage() {
    cat <<'EOF_USAGE'
Usage: scripts/demo-port-forward.sh [TEXT_FILE]
       scripts/demo-port-forward.sh --help

Deploys deploy/overlays/dev to kubectl's CURRENT CONTEXT, runs the demo against it with the mapreduce command
(submit, jobs, status), and on exit deletes the namespace if (and only if) this run created it. Before deploying
it checks that the image the overlay names is on a node, and waits (bounded) for a namespace of the same name
that is still terminating.

Environment:
  KUBECTL           kubectl command (default: kubectl), e.g. "minikube kubectl --" or "k3s kubectl"
  NAMESPACE         namespace of deploy/ (default: mapreduce)
  MAPREDUCE         the mapreduce command (default: mapreduce on PATH, else .venv/bin/mapreduce), e.g.
                    "python3 -m actors" where the package is importable
  LOCAL_PORT        local end of the port-forward (default: 8080)
  KEEP=1            keep the namespace afterwards, even one this run created
  NAMESPACE_WAIT    seconds to wait for a terminating namespace to go (default: 120)
  SKIP_IMAGE_CHECK=1  deploy without checking the nodes' images (a node lists at most 50 of them)
  MR_API_TOKEN      the public API's token, if it is protected (the mapreduce command reads it; never printed)
EOF_USAGE
}
set -euo pipefail

TEXT_FILE=""
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        -*) echo "demo-port-forward.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
        *)
            if [[ -n "$TEXT_FILE" ]]; then echo "demo-port-forward.sh: one TEXT_FILE at most" >&2; exit 2; fi
            TEXT_FILE="$arg" ;;
    esac
done
if [[ -n "$TEXT_FILE" && ! -r "$TEXT_FILE" ]]; then
    echo "demo-port-forward.sh: cannot read $TEXT_FILE" >&2
    exit 2
fi

KUBECTL="${KUBECTL:-kubectl}"
NAMESPACE="${NAMESPACE:-mapreduce}"
LOCAL_PORT="${LOCAL_PORT:-8080}"
KEEP="${KEEP:-0}"
NAMESPACE_WAIT="${NAMESPACE_WAIT:-120}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OVERLAY="$ROOT/deploy/overlays/dev"
export MR_URL="http://127.0.0.1:${LOCAL_PORT}"   # where every mapreduce command below finds the master

read -r -a kubectl <<<"$KUBECTL"   # allow "minikube kubectl --" style commands
k() { "${kubectl[@]}" --namespace "$NAMESPACE" "$@"; }

if [[ -z "${MAPREDUCE:-}" ]]; then
    if command -v mapreduce >/dev/null; then MAPREDUCE=mapreduce
    elif [[ -x "$ROOT/.venv/bin/mapreduce" ]]; then MAPREDUCE="$ROOT/.venv/bin/mapreduce"
    fi
fi
read -r -a mapreduce <<<"${MAPREDUCE:-}"
if [[ ${#mapreduce[@]} == 0 ]] || ! command -v "${mapreduce[0]}" >/dev/null; then
    echo "demo-port-forward.sh: the mapreduce command is missing; run '. scripts/env.sh' (or pip install .)," \
         "or set MAPREDUCE (e.g. MAPREDUCE=\"python3 -m actors\")" >&2
    exit 2
fi
mr() { "${mapreduce[@]}" "$@"; }

forward_pid=""
created_namespace=0   # set just before `apply`, when the namespace did not exist: only then is it ours to delete
workdir="$(mktemp -d)"
cleanup() {
    local status=$?
    if [[ -n "$forward_pid" ]]; then
        kill "$forward_pid" 2>/dev/null || true
        wait "$forward_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
    if [[ "$created_namespace" == 1 && "$KEEP" != 1 ]]; then
        echo "== deleting namespace $NAMESPACE, which this run created (KEEP=1 keeps it)"
        "${kubectl[@]}" delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null || true
    elif [[ "$created_namespace" == 0 ]] && [[ -n "${namespace_phase:-}" ]]; then
        echo "== keeping namespace $NAMESPACE: it existed before this run"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== kubectl context: $("${kubectl[@]}" config current-context 2>/dev/null || echo '(none)')"

if [[ "${SKIP_IMAGE_CHECK:-0}" != 1 ]]; then
    # The images the overlay names (after kustomize's rewrites), each looked for among the images the nodes
    # report; the dev overlay never pulls, so a missing image would only show as ErrImageNeverPull later.
    mapfile -t images < <("${kubectl[@]}" kustomize "$OVERLAY" | sed -n 's/^ *image: *"\{0,1\}\([^" ]*\)"\{0,1\} *$/\1/p' | sort -u)
    node_images=" $("${kubectl[@]}" get nodes -o jsonpath='{.items[*].status.images[*].names[*]}') "
    for image in "${images[@]}"; do
        wanted="$image"
        if [[ "${image##*/}" != *[:@]* ]]; then wanted="$image:latest"; fi
        if [[ "$node_images" != *" $wanted "* && "$node_images" != *"/$wanted "* ]]; then
            echo "demo-port-forward.sh: image $wanted is on no node of this cluster; build it and load it into" \
                 "the cluster first (e.g. 'minikube image load $wanted', 'kind load docker-image $wanted')," \
                 "or set SKIP_IMAGE_CHECK=1 if the nodes can pull it" >&2
            exit 1
        fi
    done
fi

namespace_phase="$("${kubectl[@]}" get namespace "$NAMESPACE" -o 'jsonpath={.status.phase}' --ignore-not-found)"
if [[ "$namespace_phase" == Terminating ]]; then
    echo "== namespace $NAMESPACE is terminating: waiting up to ${NAMESPACE_WAIT}s for it to go"
    if ! "${kubectl[@]}" wait --for=delete "namespace/$NAMESPACE" --timeout="${NAMESPACE_WAIT}s"; then
        echo "demo-port-forward.sh: namespace $NAMESPACE is still terminating after ${NAMESPACE_WAIT}s;" \
             "try again when it is gone (kubectl get namespace $NAMESPACE)" >&2
        namespace_phase=""   # not ours and not usable: say nothing about keeping it
        exit 1
    fi
    namespace_phase=""
fi
if [[ -z "$namespace_phase" ]]; then
    created_namespace=1
else
    echo "== namespace $NAMESPACE exists already: deploying into it, and leaving it in place afterwards"
fi

echo "== applying $OVERLAY"
"${kubectl[@]}" apply -k "$ROOT/deploy/overlays/dev"

echo "== waiting for the rollouts"
k rollout status deployment/master --timeout=180s
k rollout status statefulset/mapper --timeout=180s
k rollout status statefulset/reducer --timeout=180s

echo "== port-forwarding service/master to $MR_URL"
# Not through k(): a backgrounded function runs in a subshell, and killing that subshell would leave kubectl running.
"${kubectl[@]}" --namespace "$NAMESPACE" port-forward service/master "${LOCAL_PORT}:http" \
    >"$workdir/port-forward.log" 2>&1 &
forward_pid=$!
for _ in $(seq 1 50); do
    if mr jobs >/dev/null 2>&1; then break; fi
    if ! kill -0 "$forward_pid" 2>/dev/null; then
        cat "$workdir/port-forward.log" >&2
        exit 1
    fi
    sleep 0.2
done
mr jobs >/dev/null   # once more, so a master that never answered says why

echo "== the original example (GET /compute?text=hello+hello+hello+hello+world+world+world): mapreduce submit --wait --json"
printf 'hello hello hello hello world world world\n' >"$workdir/original.txt"
mr submit --wait --json --quiet "$workdir/original.txt"

if [[ -z "$TEXT_FILE" ]]; then
    TEXT_FILE="$workdir/sample.txt"
    for _ in $(seq 1 2000); do
        echo "the quick brown fox jumps over the lazy dog and the dog sleeps"
    done >"$TEXT_FILE"
fi
echo "== uploading $TEXT_FILE: mapreduce submit --wait --top 10 (progress on stderr, the ten most frequent words)"
mr submit --wait --top 10 "$TEXT_FILE"
echo "== the master's jobs: mapreduce jobs"
mr jobs
job_id="$(mr jobs | tail -n 1 | cut -f 1)"   # the newest job: the upload above
echo "== job $job_id: mapreduce status (partitions = reducers when it was planned)"
mr status "$job_id"
echo "== to watch jobs on the status page, keep the cluster (KEEP=1), run"
echo "   kubectl -n $NAMESPACE port-forward service/master ${LOCAL_PORT}:http   and open $MR_URL/"
