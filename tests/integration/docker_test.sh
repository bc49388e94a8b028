#!/bin/sh
# The deployment files checked without a Docker engine (none runs on
# development machines): the build stages install the Makefile's DEB_PKGS
# (Dockerfile.cpu through `make deps` itself; the CUDA image's list equals it
# under Ubuntu's names), every shared library build/cnet links is provided by
# a package the runtime stages install (or by the base image: the Essential
# packages and their direct dependencies), every source folder the build reads is copied in, both images
# run as a non-root user with /data as a volume and a HEALTHCHECK on
# /healthz, the ENTRYPOINT + compose command are options `cnet serve`
# accepts (run here on a free port and probed with the healthcheck's own
# curl), and docker/compose.yaml parses (`docker compose config`, or
# docker-compose v1, installed as root when missing) with the GPU
# reservation, secrets, volumes, restart policy and healthcheck.
BUILD=${BUILD:-build}
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { # check NAME COMMAND...: passes when COMMAND exits 0
    name=$1
    shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CPU=docker/Dockerfile.cpu
GPU=docker/Dockerfile

# The Makefile's package list, as make sees it (not as a sub-make of `make asan`,
# whose inherited flags would add "Entering directory" lines).
printf 'print-pkgs:\n\t@echo $(DEB_PKGS)\n' >"$tmp/print.mk"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -f Makefile -f "$tmp/print.mk" print-pkgs | tr ' ' '\n' | sed '/^$/d' | sort >"$tmp/pkgs"
# Debian → Ubuntu 22.04 (the CUDA images' base) names.
ubuntu() { sed 's/^libjpeg62-turbo-dev$/libjpeg-turbo8-dev/; s/^libjpeg62-turbo$/libjpeg-turbo8/'; }

check "Dockerfile.cpu builds with the Makefile's own deps" grep -q '^RUN make deps &&' "$CPU"
sed -n '/make deps DEB_PKGS="/,/"/p' "$GPU" | tr -d '\\' | sed 's/.*DEB_PKGS="//; s/".*//' | tr ' ' '\n' |
    sed '/^$/d' | sort >"$tmp/gpu-pkgs"
ubuntu <"$tmp/pkgs" | sort >"$tmp/pkgs-ubuntu"
if [ -s "$tmp/gpu-pkgs" ] && cmp -s "$tmp/gpu-pkgs" "$tmp/pkgs-ubuntu"; then
    ok "Dockerfile's build packages are the Makefile's DEB_PKGS under Ubuntu's names"
else
    bad "Dockerfile's build packages differ from the Makefile's: $(diff "$tmp/gpu-pkgs" "$tmp/pkgs-ubuntu" | tr '\n' ' ')"
fi

# The packages a stage's apt-get install lists (the last stage: the runtime).
runtime_pkgs() {
    awk '/^FROM /{buf=""} {buf=buf"\n"$0} END{print buf}' "$1" |
        sed -n '/apt-get install/,/rm -rf/p' | tr -d '\\' | tr ' ' '\n' |
        grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|useradd|mkdir|chown)$' | sort -u
}
runtime_pkgs "$CPU" >"$tmp/cpu-run"
runtime_pkgs "$GPU" >"$tmp/gpu-run"
# Direct shared-library needs of the binary → the Debian packages holding them.
[ -x "$BUILD/cnet" ] || { echo "docker_test: $BUILD/cnet is missing (run make)"; echo "docker_test: 0 passed, 1 failed"; exit 1; }
: >"$tmp/needed"
# (Sanitizer runtimes are left out: `make asan` links them, the images do not.)
for lib in $(readelf -d "$BUILD/cnet" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -vE '^lib(a|ub|t|l)san\.'); do
    path=$(ldd "$BUILD/cnet" | awk -v l="$lib" '$1 == l {print $3}')
    pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1)
    [ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1)
    echo "$lib $pkg" >>"$tmp/needed"
done
# What every Debian/Ubuntu base image has: the Essential packages and what
# they depend on directly (libc6, libgcc-s1, ...).
essential=$(dpkg-query -W -f='${Essential} ${Package}\n' | awk '$1 == "yes" {print $2}')
# shellcheck disable=SC2086
apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances $essential 2>/dev/null | sed -n 's/^ *\(Pre\)\{0,1\}Depends: \([a-z0-9.+-]*\).*/\2/p' |
    cat - "$(printf '%s\n' $essential >"$tmp/ess" && echo "$tmp/ess")" | sort -u >"$tmp/base"
for image in cpu gpu; do
    missing=""
    while read -r lib pkg; do
        want=$pkg
        [ "$image" = gpu ] && want=$(echo "$pkg" | ubuntu)
        grep -qx "$pkg" "$tmp/base" && continue
        grep -qx "$want" "$tmp/$image-run" || missing="$missing $lib($want)"
    done <"$tmp/needed"
    n=$(wc -l <"$tmp/needed")
    if [ -z "$missing" ] && [ "$n" -ge 8 ]; then
        ok "the $image image provides all $n libraries build/cnet links"
    else
        bad "the $image image lacks:$missing"
    fi
done

# Every folder of sources the build reads is copied into the build stage.
for f in $CPU $GPU; do
    missing=""
    for d in Makefile $(git ls-files '*.c' '*.h' '*.cu' '*.yaml' 'web/*' | grep -v '^tests/\|^docker/' | cut -d/ -f1 | sort -u); do
        [ "$d" = Makefile ] || [ -d "$d" ] || continue
        grep -qE "^COPY $d " "$f" || grep -qE "^COPY $d ./" "$f" || missing="$missing $d"
    done
    check "$(basename "$f") copies every source folder the build reads${missing:+ (missing$missing)}" [ -z "$missing" ]
done

for f in $CPU $GPU; do
    b=$(basename "$f")
    check "$b is multi-stage" [ "$(grep -c '^FROM ' "$f")" -eq 2 ]
    check "$b runs as a non-root user" sh -c "grep -q '^USER cnet' '$f' && grep -q 'useradd --system' '$f'"
    check "$b has /data as a volume" grep -q '^VOLUME \["/data"\]' "$f"
    check "$b has a HEALTHCHECK on /healthz" sh -c "grep -A1 '^HEALTHCHECK' '$f' | grep -q 'http://127.0.0.1:8080/healthz'"
done
check "Dockerfile builds on NVIDIA's CUDA cuDNN devel and runs on its runtime image" sh -c \
    "grep -q '^FROM nvidia/cuda:.*-cudnn-devel-' $GPU && grep -q '^FROM nvidia/cuda:.*-cudnn-runtime-' $GPU"
check "Dockerfile targets sm_80 and sm_90" sh -c "grep -q 'code=sm_80' $GPU && grep -q 'code=\[sm_90' $GPU"
check ".dockerignore keeps build outputs, data and secrets out of the context" sh -c \
    "grep -qx build .dockerignore && grep -qx data .dockerignore && grep -qx docker/cnet_token .dockerignore"

# The ENTRYPOINT and compose's command are options cnet serve takes: run them
# (ports and paths moved to this machine's temp dir) and probe as the
# healthcheck does.
entry=$(sed -n 's/^ENTRYPOINT \[\(.*\)\]/\1/p' "$CPU" | tr -d '",')
cmd=$(sed -n 's/^  command: \[\(.*\)\]/\1/p' docker/compose.yaml | tr -d '",')
mkdir -p "$tmp/data" "$tmp/models"
printf 'docker-test-token-0123456789' >"$tmp/token"
args=$(echo "$entry $cmd" | sed "s|^cnet ||; s|0\.0\.0\.0|127.0.0.1|; s|8080|0|; s|/data|$tmp/data|; s|/models|$tmp/models|; s|/run/secrets/cnet_token|$tmp/token|")
# shellcheck disable=SC2086
"$BUILD/cnet" $args >"$tmp/serve.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 50); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$tmp/serve.log")
    [ -n "$port" ] && break
    sleep 0.1
done
health=$(grep -A1 '^HEALTHCHECK' "$CPU" | sed -n 's/.*CMD \(curl [^|]*\).*/\1/p' | sed "s/8080/$port/")
# shellcheck disable=SC2086
check "the images' ENTRYPOINT and compose command start cnet serve, which passes its healthcheck" \
    sh -c "[ -n '$port' ] && $health >/dev/null"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null

# compose.yaml through a real Compose implementation.
if docker compose version >/dev/null 2>&1; then
    compose="docker compose"
elif command -v docker-compose >/dev/null 2>&1; then
    compose=docker-compose
elif [ "$(id -u)" = 0 ]; then
    echo "docker_test: installing Debian's docker-compose to parse compose.yaml"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose) >/dev/null 2>&1
    compose=docker-compose
fi
cp -r docker "$tmp/compose"
printf 'x' >"$tmp/compose/cnet_token"
printf 'x' >"$tmp/compose/hf_token"
if $compose -f "$tmp/compose/compose.yaml" --profile cpu config >"$tmp/config" 2>"$tmp/config.err"; then
    ok "compose.yaml parses ($compose config)"
    c="$tmp/config"
    check "compose reserves one NVIDIA GPU for the CUDA service" sh -c \
        "grep -A8 'reservations:' $c | grep -q 'driver: nvidia' && grep -A8 'reservations:' $c | grep -q -- '- gpu'"
    check "compose passes the API token as a secret through --token-file" sh -c \
        "grep -q '/run/secrets/cnet_token' $c && grep -q 'source: cnet_token' $c"
    check "compose passes the HF token as a secret through HF_TOKEN_FILE" sh -c \
        "grep -q 'HF_TOKEN_FILE: /run/secrets/hf_token' $c && grep -q 'source: hf_token' $c"
    check "compose restarts unless stopped and health-checks /healthz" sh -c \
        "[ \$(grep -c 'restart: unless-stopped' $c) -eq 2 ] && [ \$(grep -c '/healthz' $c) -eq 2 ]"
    check "compose keeps data in a volume and mounts models read-only" sh -c \
        "grep -q 'cnet-data:/data' $c && grep -q ':/models:ro' $c"
else
    bad "compose.yaml does not parse: $(head -c 300 "$tmp/config.err")"
fi
echo "docker_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
