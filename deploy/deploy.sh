#!/usr/bin/env bash
# Deploy a prepared release of Kisht, and roll back by itself when the new one is not healthy.
#
#   deploy/deploy.sh /srv/kisht/releases/2026-11-28-abc1234
#
# Layout (docs/deployment.md): $KISHT_HOME/releases/<id>/ is a checkout with its own .venv (pip install -e .),
# $KISHT_HOME/current is a symlink to the live release, settings live outside the releases (EnvironmentFile
# of the systemd units, or .env via KISHT_ENV_FILE). Steps:
#   1. pre-flight: the new release's `kisht db current` (refuses with one line on unsafe settings)
#   2. backup:     `kisht backup create --verify` with the live release (skipped on the very first deploy)
#   3. migrate:    remember the database revision, `kisht db upgrade` with the new release
#   4. switch:     point `current` at the new release (atomic rename), run RESTART_CMD
#   5. check:      HEALTH_URL must answer 200 within HEALTH_TRIES × HEALTH_INTERVAL seconds
#   6. on failure: `kisht db downgrade <remembered revision>` with the NEW release (it holds the downgrade
#                  steps), point `current` back at the previous release, RESTART_CMD, check again.
# Exit 0: deployed. Exit 1: refused before any change, or rolled back (the previous release serves).
# Exit 2: the rollback itself failed: follow docs/runbook.md "Deploy rolled back or failed".
set -euo pipefail

KISHT_HOME=${KISHT_HOME:-/srv/kisht}
HEALTH_URL=${HEALTH_URL:-http://127.0.0.1:8000/readyz}
HEALTH_TRIES=${HEALTH_TRIES:-30}
HEALTH_INTERVAL=${HEALTH_INTERVAL:-2}
RESTART_CMD=${RESTART_CMD:-"systemctl restart kisht-web kisht-scheduler && systemctl restart 'kisht-worker@*'"}
SKIP_BACKUP=${SKIP_BACKUP:-0}

say() { printf 'deploy: %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit "${2:-1}"; }

[ $# -eq 1 ] || die "usage: deploy.sh RELEASE_DIR"
[ -d "$1" ] || die "release directory $1 does not exist"
NEW=$(cd "$1" && pwd -P)
[ -x "$NEW/.venv/bin/kisht" ] || die "$NEW/.venv/bin/kisht is missing: create the release's venv first (pip install -e .)"
CURRENT="$KISHT_HOME/current"
PREV=""
if [ -L "$CURRENT" ]; then PREV=$(cd "$CURRENT" && pwd -P); fi
[ "$PREV" != "$NEW" ] || die "$NEW is already the live release"

kisht() { local release=$1; shift; (cd "$release" && "$release/.venv/bin/kisht" "$@"); }

revision() {  # the database's Alembic revision, e.g. 0007_reconciliation ("" for an empty database)
  { kisht "$1" db current 2>/dev/null || true; } | awk '/^[A-Za-z0-9_]+( \((effective )?head\))*$/ {rev=$1} END {print rev}'
}

healthy() {
  local n
  for n in $(seq 1 "$HEALTH_TRIES"); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$HEALTH_URL" || true)" = 200 ]; then
      return 0
    fi
    sleep "$HEALTH_INTERVAL"
  done
  return 1
}

switch_to() {  # atomic: a new symlink renamed over the old one
  ln -sfn "$1" "$KISHT_HOME/.current.new"
  mv -T "$KISHT_HOME/.current.new" "$CURRENT"
}

say "release $NEW (live: ${PREV:-none})"
say "1/5 pre-flight"
kisht "$NEW" db current >/dev/null || die "pre-flight failed: the new release refuses to start (see above)"

if [ -n "$PREV" ] && [ "$SKIP_BACKUP" != 1 ]; then
  say "2/5 backup with the live release"
  kisht "$PREV" backup create --verify || die "backup failed: nothing was changed"
else
  say "2/5 backup skipped (${PREV:+SKIP_BACKUP=1}${PREV:-first deploy})"
fi

FROM_REVISION=$(revision "$NEW")
say "3/5 migrate from ${FROM_REVISION:-an empty database}"
if ! kisht "$NEW" db upgrade; then
  [ -n "$FROM_REVISION" ] && kisht "$NEW" db downgrade "$FROM_REVISION" || true
  die "migration failed: database back at ${FROM_REVISION:-base}; the live release is unchanged"
fi

say "4/5 switch to the new release and restart"
switch_to "$NEW"
eval "$RESTART_CMD" || say "restart command failed"

say "5/5 health check $HEALTH_URL"
if healthy; then
  say "deployed $NEW at revision $(revision "$NEW")"
  exit 0
fi

say "health check FAILED: rolling back"
[ -n "$PREV" ] || die "no previous release to roll back to; the new release is live and unhealthy" 2
ROLLBACK_OK=1
if [ -n "$FROM_REVISION" ] && [ "$(revision "$NEW")" != "$FROM_REVISION" ]; then
  say "database down to $FROM_REVISION"
  kisht "$NEW" db downgrade "$FROM_REVISION" || ROLLBACK_OK=0
fi
switch_to "$PREV"
eval "$RESTART_CMD" || ROLLBACK_OK=0
if [ "$ROLLBACK_OK" = 1 ] && healthy; then
  say "rolled back to $PREV at revision $(revision "$PREV")"
  exit 1
fi
die "ROLLBACK FAILED: restore the backup taken in step 2 (docs/runbook.md)" 2
