#!/usr/bin/env bash
# The producer/worker cycle with nothing but curl: enqueue, dequeue (lease), ack.
#   RELAY_URL=http://127.0.0.1:3001 RELAY_QUEUE=default bash examples/curl.sh
# With an API key, also set RELAY_API_KEY (sent as the X-API-KEY header).
set -euo pipefail
URL="${RELAY_URL:-http://127.0.0.1:3001}/api"
QUEUE="${RELAY_QUEUE:-default}"
AUTH=()
if [ -n "${RELAY_API_KEY:-}" ]; then AUTH=(-H "X-API-KEY: ${RELAY_API_KEY}"); fi

# Enqueue: 201 {"message": "Message added successfully", "id": "...", "queue": "..."}
curl -sS --fail-with-body "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d "{\"type\": \"email\", \"payload\": {\"to\": \"ada@example.com\"}, \"queue\": \"${QUEUE}\", \"priority\": 5}" \
  "${URL}/queue/message"
echo

# Dequeue with a 5 s long poll: 200 with the message, its id and its lock_token (404 if none).
MESSAGE=$(curl -sS --fail-with-body "${AUTH[@]}" "${URL}/queue/message?queue=${QUEUE}&timeout=5&consumerId=curl")
echo "${MESSAGE}"
ID=$(printf '%s' "${MESSAGE}" | sed -E 's/.*"id":"([^"]+)".*/\1/')
TOKEN=$(printf '%s' "${MESSAGE}" | sed -E 's/.*"lock_token":"([^"]+)".*/\1/')

# ... do the work, then acknowledge with the lock token (409 LOCK_LOST if the lease was lost).
curl -sS --fail-with-body "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d "{\"id\": \"${ID}\", \"lock_token\": \"${TOKEN}\"}" "${URL}/queue/ack"
echo
