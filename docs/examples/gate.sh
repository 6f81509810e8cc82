#!/bin/sh
# Any CI system, or your shell: trigger early, do other work, then gate on the run. Needs `pip install dbtgate`
# (or `docker run ghcr.io/dbtgate/dbtgate:v1` in place of `dbtgate`) and DBT_CLOUD_API_TOKEN in the environment.
set -eu
: "${DBT_CLOUD_API_TOKEN:?set DBT_CLOUD_API_TOKEN from your CI system's secret store}"
export DBT_CLOUD_URL="${DBT_CLOUD_URL:-https://ab123.us1.dbt.com}" DBT_CLOUD_ACCOUNT_ID="${DBT_CLOUD_ACCOUNT_ID:-12345}"

# --json prints {"outputs": {...}, "run": {...}}: the run id is an output.
run_id="$(dbtgate run --job-id 67890 --git-sha "$(git rev-parse HEAD)" --no-wait --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["outputs"]["run_id"])')"
# Should the work below fail, cancel the run instead of leaving it to burn warehouse time.
trap 'dbtgate cancel "$run_id" > /dev/null' EXIT
./build-the-app.sh   # meanwhile
trap - EXIT
dbtgate wait "$run_id" --timeout 45m --summary dbtgate-summary.md --junit-xml dbtgate-junit.xml   # 0: succeeded
