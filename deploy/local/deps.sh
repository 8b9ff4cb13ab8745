#!/usr/bin/env bash
# Install what the local stack and the test suite need, on a fresh Debian 12 machine or an old one.
#
#   - Debian packages: MariaDB server and client, WordPress, PHP CLI with mysqli, and prometheus
#     for its promtool (apt-get update only when one of them is missing). The Debian MariaDB service
#     is kept from running on 3306: the stack runs its own instance from deploy/local/stack.py; the
#     prometheus service is disabled the same way.
#   - Java >= 17 and Maven, for the Kafka broker (its jars come from Maven Central at `stack up`).
#   - The Kafka clients tests/integration/test_clients.py reads wpcdc's topics with: kcat (Debian),
#     Node.js with npm, and KafkaJS from tests/clients/kafkajs/package-lock.json (`npm ci`, with
#     npm's cache in ~/.npm). The Java client is the broker's own kafka-clients jar.
#   - .venv with this project installed editable with its dev extra (pip's cache in ~/.cache/pip).
#
# Idempotent, and a quick no-op (well under 5 s) once everything is there. Needs root (or sudo)
# only when it has Debian packages to install.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$REPO/.venv}"
# prometheus: for its promtool (tests/unit/test_alerts.py); its service is kept from running.
APT_PACKAGES=(mariadb-server mariadb-client wordpress php-cli php-mysql kcat prometheus)

log() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

installed() {  # true if every named Debian package is installed
    local pkg
    for pkg in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || return 1
    done
}

APT_UPDATED=0
apt_install() {  # apt_install PKG...: update the lists once, install without starting services
    local created_policy=0
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    # Keep maintainer scripts from starting services (Debian's mariadb on 3306, apache2 on 80):
    # invoke-rc.d asks /usr/sbin/policy-rc.d, and 101 means "not allowed".
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    log "apt-get install $*"
    local rc=0
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" || rc=$?
    if [ "$created_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    fi
    [ "$rc" -eq 0 ] || die "apt-get install $* failed ($rc)"
}

pid_alive() {  # pid_alive PIDFILE
    local pid
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

debian_mariadb_off() {
    # Not auto-started at boot ...
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        if systemctl is-enabled --quiet mariadb 2>/dev/null || systemctl is-active --quiet mariadb 2>/dev/null; then
            log "disabling and stopping Debian's mariadb service (the stack runs its own)"
            "${SUDO[@]}" systemctl disable --now mariadb >/dev/null 2>&1 || true
        fi
    elif compgen -G '/etc/rc[2-5].d/S*mariadb' >/dev/null && command -v update-rc.d >/dev/null; then
        log "disabling Debian's mariadb init script at boot (the stack runs its own)"
        "${SUDO[@]}" update-rc.d mariadb disable >/dev/null 2>&1 || true
    fi
    # ... and not running now. Its pid file and socket live under /run/mysqld; ours under .stack/.
    if pid_alive /run/mysqld/mysqld.pid; then
        log "stopping Debian's mariadb service on 3306 (the stack runs its own)"
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
            "${SUDO[@]}" systemctl stop mariadb || true
        elif [ -x /etc/init.d/mariadb ]; then
            # Not invoke-rc.d: a policy-rc.d that forbids starts may forbid stops too.
            "${SUDO[@]}" /etc/init.d/mariadb stop >/dev/null || true
        fi
        if pid_alive /run/mysqld/mysqld.pid; then
            "${SUDO[@]}" kill "$(cat /run/mysqld/mysqld.pid)" || true
        fi
    fi
}

# ------------------------------------------------------------------------------ Debian packages

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apache_was_running=0
    pgrep -x apache2 >/dev/null 2>&1 && apache_was_running=1
    apt_install "${APT_PACKAGES[@]}"
    # apache2 comes with the wordpress package; the stack drives WordPress through PHP CLI, so an
    # apache that this install started (where policy-rc.d did not hold it back) is stopped again.
    if [ "$apache_was_running" -eq 0 ] && pgrep -x apache2 >/dev/null 2>&1; then
        log "stopping the apache2 that installing wordpress started"
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
            "${SUDO[@]}" systemctl disable --now apache2 >/dev/null 2>&1 || true
        else
            "${SUDO[@]}" /etc/init.d/apache2 stop >/dev/null 2>&1 || true
        fi
    fi
fi
debian_mariadb_off

# Debian's prometheus package enables its server at boot; only its promtool is wanted here.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    if systemctl is-enabled --quiet prometheus 2>/dev/null || systemctl is-active --quiet prometheus 2>/dev/null; then
        log "disabling Debian's prometheus service (only promtool is used)"
        "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
elif compgen -G '/etc/rc[2-5].d/S*prometheus' >/dev/null && command -v update-rc.d >/dev/null; then
    log "disabling Debian's prometheus init script at boot (only promtool is used)"
    "${SUDO[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

# -------------------------------------------------------------------------------- Java and Maven

java_major() {
    command -v java >/dev/null || { echo 0; return; }
    # 'openjdk version "17.0.15" 2025-04-15' or 'java version "1.8.0_392"'
    java -version 2>&1 | sed -n 's/.* version "\([0-9][0-9]*\)\(\.\([0-9][0-9]*\)\)\{0,1\}.*/\1 \3/p' | head -n1 \
        | awk '{ print ($1 == 1 ? $2 : $1) }'
}

jmajor="$(java_major)"
jmajor="${jmajor:-0}"
need_java=()
if [ "$jmajor" -lt 17 ]; then
    need_java+=(openjdk-17-jre-headless)
fi
if ! command -v mvn >/dev/null; then
    need_java+=(maven)
fi
if [ "${#need_java[@]}" -gt 0 ]; then
    apt_install "${need_java[@]}"
    if [ "$(java_major)" -lt 17 ] && [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]; then
        "${SUDO[@]}" update-alternatives --set java /usr/lib/jvm/java-17-openjdk-amd64/bin/java
    fi
    jmajor="$(java_major)"
    [ "${jmajor:-0}" -ge 17 ] || die "java >= 17 is needed for Kafka; java -version says: $(java -version 2>&1 | head -n1)"
    command -v mvn >/dev/null || die "mvn is still missing after installing maven"
fi

# ------------------------------------------------------------------------------ Node.js, KafkaJS

# Any Node.js >= 14 runs KafkaJS 2.2.4; Debian's is used only where the machine has none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
KAFKAJS="$REPO/tests/clients/kafkajs"
# npm ci again only when the lock file changed (it empties node_modules first, so it is not free).
kstamp="$KAFKAJS/node_modules/.wpcdc-deps"
kwant="$( { cat "$KAFKAJS/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$kstamp" 2>/dev/null)" != "$kwant" ]; then
    log "npm ci in tests/clients/kafkajs"
    (cd "$KAFKAJS" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    echo "$kwant" >"$kstamp"
fi

# ------------------------------------------------------------- examples/nextjs: Chromium, npm ci

# The Next.js recipe (examples/nextjs): its npm packages from package-lock.json (`npm ci`, npm's
# cache in ~/.npm, again only when the lock file changed), and Debian's chromium for the one
# screenshot its end-to-end test takes (tests/examples/test_nextjs.py).
if ! installed chromium; then
    apt_install chromium
fi
NEXTJS="$REPO/examples/nextjs"
nstamp="$NEXTJS/node_modules/.wpcdc-deps"
nwant="$(sha256sum "$NEXTJS/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$nstamp" 2>/dev/null)" != "$nwant" ]; then
    log "npm ci in examples/nextjs"
    (cd "$NEXTJS" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    echo "$nwant" >"$nstamp"
fi

# ----------------------------------------------------------------------------- Python virtualenv

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" --version 2>&1); wpcdc needs Python >= 3.11"

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi

# Reinstall only when what decides the install changed: pyproject.toml, the interpreter, the path.
stamp="$VENV/.wpcdc-deps"
want="$( { cat pyproject.toml; "$VENV/bin/python" -VV; echo "$REPO"; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "pip install -e '.[dev]' into $VENV"
    rm -f "$stamp"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    echo "$want" >"$stamp"
fi

# ------------------------------------------------------- examples/postgres (PostgreSQL recipe)

# The server for the recipe's throwaway cluster (deploy/local/postgres.py runs its own initdb on
# loopback; Debian's own cluster service is kept from running), and the examples extra (psycopg).
if ! installed postgresql-15; then
    apt_install postgresql-15
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    if systemctl is-enabled --quiet postgresql 2>/dev/null || systemctl is-active --quiet postgresql 2>/dev/null; then
        log "disabling Debian's postgresql service (the recipe runs its own cluster)"
        "${SUDO[@]}" systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
fi
# Like the dev extra above: again only when pyproject.toml, the interpreter or the path changed.
estamp="$VENV/.wpcdc-deps-examples"
ewant="$( { cat pyproject.toml; "$VENV/bin/python" -VV; echo "$REPO"; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$estamp" 2>/dev/null)" != "$ewant" ]; then
    log "pip install -e '.[examples]' into $VENV"
    rm -f "$estamp"
    "$VENV/bin/python" -m pip install -q -e '.[examples]'
    echo "$ewant" >"$estamp"
fi

# ------------------------------------------------------------ examples/search (Solr recipe)

# Solr's jars for the search recipe's throwaway Solr (examples/search/solr.py runs the test
# framework's embedded Jetty from them), fetched from Maven Central into ~/.m2 now, so that its
# first start (and the end-to-end test on a fresh machine) downloads nothing.
SOLR_POM="$REPO/examples/search/solr/pom.xml"
solr_version="$(sed -n 's:.*<solr.version>\(.*\)</solr.version>.*:\1:p' "$SOLR_POM")"
solr_jar="$HOME/.m2/repository/org/apache/solr/solr-test-framework/$solr_version/solr-test-framework-$solr_version.jar"
if [ ! -f "$solr_jar" ]; then
    log "mvn: Solr $solr_version's jars into ~/.m2 (examples/search)"
    mvn -B -q -f "$SOLR_POM" dependency:resolve dependency:build-classpath -Dmdep.outputFile=/dev/null \
        || die "mvn could not fetch Solr $solr_version's jars from Maven Central (examples/search/solr/pom.xml)"
fi

log "ok (python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'), java $jmajor, $(command -v mvn), node $(node --version))"
