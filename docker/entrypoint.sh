#!/bin/sh
# What the container runs; the tests run the same script outside a container.
#   entrypoint.sh migrate   migrate the database once, then exit (compose runs it first)
#   entrypoint.sh web       serve the API and console without a worker
#   entrypoint.sh worker    run a worker
#   entrypoint.sh auditor   watch the workers from a separate process
set -eu
INCIDENT=${INCIDENT:-incident}
case "${1:-web}" in
  migrate) exec "$INCIDENT" db upgrade ;;
  web) exec "$INCIDENT" serve --host "${INCIDENT_HOST:-0.0.0.0}" --port "${INCIDENT_PORT:-8000}" --no-worker ;;
  worker) exec "$INCIDENT" worker ;;
  auditor) exec "$INCIDENT" auditor ;;
  *) exec "$@" ;;
esac
