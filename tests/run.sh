#!/usr/bin/env bash
# The README's test command: installs what the suites talk to when it is missing (Debian
# packages: Dovecot for the IMAP tests, aiosmtpd for the SMTP tests, Chromium for the GraphiQL
# page's test, Postfix's tools for the delivery benchmark's peers), then runs `cargo test --workspace` with any arguments given.
#
# Without HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_URL the suites run on SQLite and the
# in-process bus; .ci/run sets both (PostgreSQL and Redis) and calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# The delivery tests talk to a real SMTP server: Debian's aiosmtpd, under Debian's python3.
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
# The mailbox tests talk to a real IMAP server: Debian's Dovecot, started by the tests.
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
# The outage tests start redis-server processes of their own.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The GraphiQL page is tested in headless Chromium.
[ -x /usr/bin/chromium ] || need+=(chromium)
# The delivery benchmark's peers: Postfix's smtp-sink and smtp-source.
[ -x /usr/sbin/smtp-sink ] || command -v smtp-sink >/dev/null 2>&1 || need+=(postfix)

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: missing ${need[*]}, and there is no apt-get to install them: install the equivalents, or run 'cargo test --workspace' where they are" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Postfix asks nothing with this answer preset; it is only used for its tools.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

exec cargo test --workspace "$@"
