#!/bin/sh
# The dashboard's browser test (tests/browser/dashboard.test.mjs) in headless
# Chromium against a real `cnet serve`. Installs what it needs when missing,
# like the Makefile's `deps`: Debian's chromium (as root) and playwright-core
# from tests/browser/package-lock.json (npm ci; offline once installed).
# Skips with one line only when Chromium cannot be installed at all.
BUILD=${BUILD:-build}
export BUILD
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "web_test: installing Debian's chromium"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1
    fi
    if [ ! -x "$CHROMIUM" ]; then
        echo "SKIP web_test: Chromium is not installed and cannot be (apt-get install chromium as root)"
        echo "web_test: 0 passed, 0 failed"
        exit 0
    fi
fi
if ! command -v node >/dev/null 2>&1; then
    echo "web_test: node is missing (apt-get install nodejs npm)"
    echo "web_test: 0 passed, 1 failed"
    exit 1
fi
if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
    echo "web_test: installing playwright-core (tests/browser/package-lock.json)"
    if ! npm ci --prefix tests/browser --prefer-offline --no-audit --no-fund >/dev/null 2>&1; then
        echo "web_test: npm ci in tests/browser failed"
        echo "web_test: 0 passed, 1 failed"
        exit 1
    fi
fi
exec node tests/browser/dashboard.test.mjs
