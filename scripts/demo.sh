#!/usr/bin/env bash
# The quick start: start a local cluster (1 master, 3 mappers, 2 reducers), count the words of the sample text
# shipped in data/, print the top words, and stop the cluster. Extra arguments go to `mapreduce run`.
set -euo pipefail
. "$(dirname "$0")/env.sh" ""  # no extras; without an argument env.sh would see this script's arguments
cd "$ROOT"
exec "$VENV/bin/python" -m actors run data/genesis-kjv.txt --top 20 --mappers 3 --reducers 2 "$@"
