#!/bin/sh
# Writes Parquet test files with the independent writer (write.mjs):
#   sh tests/tools/parquet_writer/generate.sh matrix|dataset|fill50k DIR
# Installs its npm packages from the committed package-lock.json when missing
# (npm ci --prefer-offline: offline once installed), like web_test.sh.
# Exits non-zero, saying why, when node or the packages are unavailable.
here=$(dirname "$0")
if ! command -v node >/dev/null 2>&1; then
    echo "parquet_writer: node is missing (apt-get install nodejs npm)" >&2
    exit 1
fi
if [ ! -f "$here/node_modules/parquet-wasm/package.json" ] ||
    [ ! -f "$here/node_modules/apache-arrow/package.json" ]; then
    if ! npm ci --prefix "$here" --prefer-offline --no-audit --no-fund >/dev/null 2>&1; then
        echo "parquet_writer: npm ci in $here failed" >&2
        exit 1
    fi
fi
exec node "$here/write.mjs" "$@"
