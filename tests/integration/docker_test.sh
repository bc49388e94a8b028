#!/bin/sh
# The deployment files checked without running a container (that is
# tests/integration/docker_run_test.sh): docker/Dockerfile is the one image
# file, CPU and CUDA alike (only its base images, build arguments, differ),
# its build stage installs the Makefile's DEB_PKGS through `make deps` itself,
# the runtime stage installs what docker/runtime_pkgs.sh finds build/cnet
# links (checked here against the packages' own file lists), every source
# folder the build reads is copied in, it runs as a non-root user with /data
# as a volume and a HEALTHCHECK on /healthz, the ENTRYPOINT + compose command
# are options `cnet serve` accepts (run here on a free port and probed with
# the healthcheck's own curl), and docker/compose.yaml parses (`docker
# compose config`, or docker-compose v1, installed as root when missing) with
# the CUDA service on NVIDIA's images, the GPU reservation, secrets, volumes,
# restart policy and healthcheck.
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
F=docker/Dockerfile

check "docker/Dockerfile is the only image file (CPU and CUDA share every line)" \
    test "$(find docker -maxdepth 1 -iname '*dockerfile*' -o -maxdepth 1 -iname '*containerfile*' | wc -l)" -eq 1
check "its two stages build on the base images it takes as arguments" sh -c \
    "[ \"\$(grep '^FROM ' $F)\" = \"\$(printf 'FROM \${BUILD_IMAGE} AS build\\nFROM \${RUN_IMAGE}')\" ] &&
     grep -q '^ARG BUILD_IMAGE=debian:bookworm-slim' $F && grep -q '^ARG RUN_IMAGE=debian:bookworm-slim' $F"
check "it builds with the Makefile's own deps, less the container tests' packages" \
    grep -q '^RUN make deps DEB_PKGS_TEST= &&' "$F"
check "it passes CUDA_GENCODE (sm_80 and sm_90) to the Makefile, whose nvcc flags use it" sh -c \
    "grep -q '^ARG CUDA_GENCODE=.*code=sm_80.*code=\\[sm_90' $F && grep -q 'CUDA_GENCODE=\"\$CUDA_GENCODE\"' $F &&
     grep -q '^NVCCFLAGS := .*\$(CUDA_GENCODE)' Makefile"

# The runtime stage installs docker/runtime_pkgs.sh's list for build/cnet:
# every library the binary links must be a file of one of those packages
# (dpkg -L, the other way round from the script's dpkg -S).
[ -x "$BUILD/cnet" ] || { echo "docker_test: $BUILD/cnet is missing (run make)"; echo "docker_test: 0 passed, 1 failed"; exit 1; }
check "the runtime stage installs runtime_pkgs.sh's list" sh -c \
    "grep -q 'runtime_pkgs.sh build/cnet >build/runtime-packages' $F &&
     grep -q 'cat /usr/local/share/cnet/runtime-packages' $F"
# A CUDA build on a host whose CUDA toolkit is not from packages (NVIDIA's
# installer in /usr/local): its CUDA libraries come with the CUDA image's
# base, so they are left out here, and said so.
cuda_libs='^lib(cudart|cublas|cublasLt|cudnn|nccl)[.]'
skip=""
cudart=$(ldd "$BUILD/cnet" | awk '$1 ~ /^libcudart[.]/ {print $3}')
if [ -n "$cudart" ] && ! dpkg -S "$cudart" >/dev/null 2>&1 && ! dpkg -S "$(readlink -f "$cudart")" >/dev/null 2>&1; then
    skip=$cuda_libs
    echo "     (the CUDA libraries $BUILD/cnet links are not from packages here: left to the CUDA image's base)"
fi
sh docker/runtime_pkgs.sh "$BUILD/cnet" "$skip" >"$tmp/run-pkgs" 2>"$tmp/run-pkgs.err"
: >"$tmp/files"
while read -r pkg; do dpkg -L "$pkg" >>"$tmp/files" 2>/dev/null; done <"$tmp/run-pkgs"
missing=""
n=0
# (Sanitizer runtimes are left out: `make asan` links them, the images do not.)
for lib in $(readelf -d "$BUILD/cnet" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -vE '^lib(a|ub|t|l)san\.' | grep -vE "${skip:-^$}"); do
    n=$((n + 1))
    grep -q "/$lib\$" "$tmp/files" || missing="$missing $lib"
done
if [ -s "$tmp/run-pkgs" ] && [ -z "$missing" ] && [ "$n" -ge 8 ]; then
    ok "the packages runtime_pkgs.sh names hold all $n libraries build/cnet links"
else
    bad "the packages runtime_pkgs.sh names ($(tr '\n' ' ' <"$tmp/run-pkgs")) lack:$missing $(cat "$tmp/run-pkgs.err")"
fi
# A library no package holds (one built here) is an error that names it.
printf 'int stray(void) { return 0; }\n' >"$tmp/stray.c"
printf 'int stray(void);\nint main(void) { return stray(); }\n' >"$tmp/main.c"
gcc -shared -fPIC -o "$tmp/libstray.so" "$tmp/stray.c" &&
    gcc -o "$tmp/uses-stray" "$tmp/main.c" -L"$tmp" -lstray -Wl,-rpath,"$tmp"
check "runtime_pkgs.sh refuses a library no package holds, naming it" sh -c \
    "! sh docker/runtime_pkgs.sh '$tmp/uses-stray' 2>'$tmp/stray.err' && grep -q 'libstray.so' '$tmp/stray.err'"

# Every folder of sources the build reads is copied into the build stage.
missing=""
for d in Makefile $(git ls-files '*.c' '*.h' '*.cu' '*.yaml' 'web/*' | grep -v '^tests/\|^docker/' | cut -d/ -f1 | sort -u); do
    [ "$d" = Makefile ] || [ -d "$d" ] || continue
    grep -qE "^COPY $d " "$F" || grep -qE "^COPY $d ./" "$F" || missing="$missing $d"
done
check "Dockerfile copies every source folder the build reads${missing:+ (missing$missing)}" [ -z "$missing" ]
check "Dockerfile runs as a non-root user" sh -c "grep -q '^USER cnet' '$F' && grep -q 'useradd --system' '$F'"
check "Dockerfile has /data as a volume" grep -q '^VOLUME \["/data"\]' "$F"
check "Dockerfile has a HEALTHCHECK on /healthz" sh -c "grep -A1 '^HEALTHCHECK' '$F' | grep -q 'http://127.0.0.1:8080/healthz'"
check ".dockerignore keeps build outputs, data and secrets out of the context" sh -c \
    "grep -qx build .dockerignore && grep -qx data .dockerignore && grep -qx docker/cnet_token .dockerignore"

# The ENTRYPOINT and compose's command are options cnet serve takes: run them
# (ports and paths moved to this machine's temp dir) and probe as the
# healthcheck does.
entry=$(sed -n 's/^ENTRYPOINT \[\(.*\)\]/\1/p' "$F" | tr -d '",')
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
health=$(grep -A1 '^HEALTHCHECK' "$F" | sed -n 's/.*CMD \(curl [^|]*\).*/\1/p' | sed "s/8080/$port/")
# shellcheck disable=SC2086
check "the image's ENTRYPOINT and compose command start cnet serve, which passes its healthcheck" \
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
    check "compose builds both services from docker/Dockerfile, the CUDA one on NVIDIA's cuDNN images" sh -c \
        "[ \$(grep -c 'dockerfile: docker/Dockerfile\$' $c) -eq 2 ] &&
         grep -q 'BUILD_IMAGE: nvidia/cuda:.*-cudnn-devel-' $c && grep -q 'RUN_IMAGE: nvidia/cuda:.*-cudnn-runtime-' $c"
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
