#!/usr/bin/env bash
# One-shot initialisation for docker-compose.yaml (service airflow-init), run as the airflow user:
#   1. migrate the metadata database (postgres);
#   2. create the admin user of the simple auth manager (Airflow 3's default auth manager):
#      the user is declared by AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS, its password is written
#      to AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE (a volume shared with airflow-apiserver);
#   3. create the pools of deploy/pools.json: composer_upstream caps concurrent upstream-facing
#      tasks (deploy/airflow_local_settings.py assigns the tasks to it).
# Safe to run again: every step is idempotent.
set -euo pipefail

: "${_AIRFLOW_WWW_USER_USERNAME:?}" "${_AIRFLOW_WWW_USER_PASSWORD:?}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"

echo "airflow-init: migrating the metadata database"
airflow db migrate

echo "airflow-init: admin user ${_AIRFLOW_WWW_USER_USERNAME} (simple auth manager)"
python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
passwords = {}
if os.path.exists(path):
    with open(path) as handle:
        passwords = json.loads(handle.read().strip() or "{}")
passwords[os.environ["_AIRFLOW_WWW_USER_USERNAME"]] = os.environ["_AIRFLOW_WWW_USER_PASSWORD"]
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as handle:
    json.dump(passwords, handle)
os.chmod(path, 0o600)
PY

echo "airflow-init: pools from deploy/pools.json"
airflow pools import /opt/airflow/deploy/pools.json

airflow version
