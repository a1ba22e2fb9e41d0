#!/bin/sh
# Usage: check-branch.sh [branch]  (default: the current branch)
branch="${1:-$(git rev-parse --abbrev-ref HEAD)}"
if printf '%s\n' "$branch" | grep -Eq '^(feat|fix|docs|chore)/[A-Z]+-[0-9]+-[a-z0-9-]+$'; then
    echo "ok: $branch"
else
    echo "bad branch name: $branch (want <kind>/<TICKET-123>-<short-title>)" >&2
    exit 1
fi
