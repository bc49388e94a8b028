#!/bin/sh
# The container image built and run for real, under podman (rootful), as a
# user runs it: docker/Dockerfile's CPU image built on a Debian bookworm base
# made offline (tests/integration/docker_base.sh; no registry is reachable
# here), started read-only with the API token as a secret and /data as a
# volume; its HEALTHCHECK passes; over HTTP it generates an image and trains a
# short job on an uploaded dataset; it runs as the non-root user cnet with
# only /data and /tmp writable; a new container on the same volume finds the
# job history and the same artefacts; and docker/compose.yaml's CPU service
# runs unchanged under podman-compose (up, healthy, one request, down).
# It is not the static check of the files (tests/integration/docker_test.sh)
# and does not build the CUDA image (its base cannot be pulled here; it is the
# same Dockerfile with other base images). Prints how long each phase took.
# Without podman (and no way to install it) it says so and skips.
set -u
. tests/lib/lib_check.sh
NAME=docker_run_test
BASE=localhost/debian:bookworm
IMAGE=localhost/cnet-test:$$ # this run's own tag (other runs may build other sources)
UID_CNET=10001                # the Dockerfile's user cnet
# This sandbox refuses podman's default ulimits; these it takes (they are
# podman's containers.conf defaults for every container the test starts,
# compose's included, so compose.yaml stays as it ships).
ULIMITS='"nofile=1024:1024", "nproc=1000:1000"'
HEALTH_WAIT_S=180 # a container not healthy by then has failed to start
JOB_WAIT_S=900    # the 4-step training job on 2 loaded cores takes seconds

if ! command -v podman >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$NAME: installing podman, podman-compose and debootstrap"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman podman-compose \
        debootstrap) >/dev/null 2>&1
fi
for tool in podman podman-compose debootstrap; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP $NAME: $tool is not installed and could not be (run as root: make deps)"
        summary "$NAME"
        exit
    fi
done

tmp=$(mktemp -d)
export CONTAINERS_CONF="$tmp/containers.conf"
printf '[containers]\ndefault_ulimits = [%s]\n' "$ULIMITS" >"$CONTAINERS_CONF"
run_id=cnet-test-$$
vol=$run_id-data
proj=cnettest$$
compose_file=$tmp/compose/docker/compose.yaml
cleanup() {
    podman rm -f -t 5 "$run_id-a" "$run_id-b" >/dev/null 2>&1
    podman volume rm -f "$vol" >/dev/null 2>&1
    podman secret rm "$run_id-token" >/dev/null 2>&1
    podman untag "$IMAGE" "$IMAGE" >/dev/null 2>&1 # the layers stay, the build cache
    [ -f "$compose_file" ] && podman-compose -f "$compose_file" -p "$proj" down -v >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

t_phase=$(date +%s)
phase() { # phase NAME: how long the phase that ends here took
    now=$(date +%s)
    echo "phase $1: $((now - t_phase)) s"
    t_phase=$now
}
fatal() {
    echo "FAIL $1"
    fail=$((fail + 1))
    summary "$NAME"
    exit 1
}
# json FIELD.PATH < JSON: one value (a.b.0.c), empty when absent
json() {
    /usr/bin/python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else (v or {}).get(k)
print("" if v is None else v)' "$1" 2>/dev/null
}
token=docker-test-token-$$-0123456789abcdef
# api PORT METHOD PATH OUT [curl args]: the HTTP status; the body in OUT
api() {
    port=$1 method=$2 path=$3 out=$4
    shift 4
    curl -sS -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token" "$@" \
        "http://127.0.0.1:$port$path"
}
# wait_healthy CONTAINER: runs the image's HEALTHCHECK (podman does not run
# it on its own without systemd) until it passes; false, with the logs, when
# the container stops or HEALTH_WAIT_S pass.
wait_healthy() {
    waited=0
    while [ "$waited" -lt "$HEALTH_WAIT_S" ]; do
        podman healthcheck run "$1" >/dev/null 2>&1 && return 0
        if [ "$(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" != true ]; then
            echo "$1 stopped:"
            podman logs "$1" 2>&1 | tail -n 20
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "$1 not healthy after $HEALTH_WAIT_S s:"
    podman logs "$1" 2>&1 | tail -n 20
    return 1
}
host_port() { podman port "$1" 8080/tcp | sed -n 's/.*:\([0-9]*\)$/\1/p' | head -n 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# 1. The base image, reused when its stamp matches.
sh tests/integration/docker_base.sh "$BASE" || fatal "the base image $BASE (docker_base.sh)"
phase base

# 2. The image: docker/Dockerfile with the local base (podman's layer cache
# makes a rebuild of unchanged sources quick). --format docker keeps the
# HEALTHCHECK, which the OCI format has no field for.
if ! podman build --format docker -f docker/Dockerfile --build-arg BUILD_IMAGE="$BASE" \
    --build-arg RUN_IMAGE="$BASE" -t "$IMAGE" . >"$tmp/build.log" 2>&1; then
    tail -n 30 "$tmp/build.log"
    fatal "podman build -f docker/Dockerfile"
fi
check "the image builds from docker/Dockerfile on $BASE" true
# Each build of changed sources leaves the last one's stages untagged (about
# 1.3 GB); those a day old go (a build under way elsewhere is younger).
podman image prune -f --filter until=24h >/dev/null 2>&1
check "the image's user is cnet" test "$(podman image inspect -f '{{.Config.User}}' "$IMAGE")" = cnet
phase build

# 3. A demo model and dataset, made by the image's own binary in host
# folders (owned by the image's user, as a user would prepare them).
mkdir -p "$tmp/models" "$tmp/fill"
chown "$UID_CNET" "$tmp/models" "$tmp/fill"
podman run --rm -v "$tmp/models:/models" -v "$tmp/fill:/fill" --entrypoint sh "$IMAGE" -c \
    'cnet init-model --out /models/demo --preset tiny --seed 1 && cnet dataset make-fill --n 16 --size 32 --out /fill/fill' \
    >"$tmp/prep.log" 2>&1 || { cat "$tmp/prep.log"; fatal "cnet init-model and dataset make-fill in the image"; }
tar -C "$tmp/fill/fill" -cf "$tmp/fill.tar" .
printf '%s' "$token" >"$tmp/token"
podman secret create "$run_id-token" "$tmp/token" >/dev/null || fatal "podman secret create"
phase prepare

# start NAME SECRET-ARGS: the image read-only, /data the volume, the models
# read-only, port 8080 on a free host port, the token file at
# /run/secrets/cnet_token (a podman secret, or bind-mounted as README's
# `docker run` and compose do).
start() {
    name=$1
    shift
    podman run -d --name "$name" --read-only -v "$vol:/data" -v "$tmp/models:/models:ro" "$@" \
        -p 127.0.0.1::8080 "$IMAGE" --token-file /run/secrets/cnet_token >"$tmp/run.log" 2>&1 ||
        { cat "$tmp/run.log"; fatal "podman run $name"; }
}
# (podman 4.3 mounts a secret before the tmpfs it puts on /run for
# --read-only, so the secret needs a writable /run/secrets of its own.)
start "$run_id-a" --tmpfs /run/secrets \
    --secret "$run_id-token,type=mount,target=cnet_token,uid=$UID_CNET,mode=0400"
check "the container passes its HEALTHCHECK" wait_healthy "$run_id-a"
port=$(host_port "$run_id-a")
check "the token secret is required" test "$(curl -sS -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$port/v1/models")" = 401
phase start

# 4. What it runs as and where it may write.
c=$run_id-a
check "it runs as the non-root user cnet ($UID_CNET)" sh -c \
    "podman exec $c grep '^Uid:' /proc/1/status | grep -Eq '^Uid:[[:space:]]+${UID_CNET}[[:space:]]+${UID_CNET}'"
check "its root filesystem is read-only" sh -c \
    "[ \"\$(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' $c)\" = true ] &&
     ! podman exec $c touch /usr/local/bin/probe 2>/dev/null && ! podman exec $c touch /probe 2>/dev/null"
check "/data and /tmp are writable" podman exec "$c" sh -c \
    'touch /data/probe /tmp/probe && rm /data/probe /tmp/probe'

# 5. Generate an image over HTTP: a PNG of the requested size.
png_size() { /usr/bin/python3 -c 'import struct, sys
d = open(sys.argv[1], "rb").read(24)
print("%dx%d" % struct.unpack(">II", d[16:24]) if d[:8] == b"\x89PNG\r\n\x1a\n" else "not a PNG")' "$1"; }
code=$(api "$port" POST /v1/generate "$tmp/out.png" -F model=demo -F prompt='red circle with navy background' \
    -F steps=2 -F seed=1 -F width=64 -F height=48 -F image=@docker/demo-control.png)
got=$(png_size "$tmp/out.png" 2>/dev/null)
check "POST /v1/generate answers a 64x48 PNG (got $code, $got)" test "$code $got" = "200 64x48"
phase generate

# 6. A short training job on an uploaded dataset, followed to its end.
code=$(api "$port" POST "/v1/datasets?name=fill.tar" "$tmp/ds.json" --data-binary @"$tmp/fill.tar" \
    -H 'Content-Type: application/octet-stream')
ds=$(json id <"$tmp/ds.json")
check "POST /v1/datasets takes the dataset (got $code, $(json samples <"$tmp/ds.json") samples)" \
    test "$code $(json samples <"$tmp/ds.json")" = "201 16"
spec='{"pretrained_model_name_or_path": "demo", "dataset": "'$ds'", "resolution": 32,
  "train_batch_size": 4, "max_train_steps": 4, "checkpointing_steps": 2, "learning_rate": 0.0001,
  "lr_warmup_steps": 0, "seed": 1}'
code=$(api "$port" POST /v1/jobs "$tmp/job.json" -H 'Content-Type: application/json' -d "$spec")
job=$(json id <"$tmp/job.json")
check "POST /v1/jobs queues the training job (got $code)" test "$code" = 202 -a -n "$job"
waited=0
state=""
while [ "$waited" -lt "$JOB_WAIT_S" ]; do
    api "$port" GET "/v1/jobs/$job" "$tmp/job.json" >/dev/null
    state=$(json state <"$tmp/job.json")
    case "$state" in succeeded | failed | cancelled) break ;; esac
    sleep 2
    waited=$((waited + 2))
done
check "the job succeeds (state $state $(json error.message <"$tmp/job.json"))" test "$state" = succeeded
weights=diffusion_pytorch_model.safetensors
code=$(api "$port" GET "/v1/jobs/$job/artifacts/$weights" "$tmp/w1")
# a safetensors file: an 8-byte little-endian header length, then its JSON
st_ok() { /usr/bin/python3 -c 'import json, struct, sys
d = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", d[:8])[0]
json.loads(d[8:8 + n])
assert len(d) > 8 + n' "$1" 2>/dev/null; }
valid=$(st_ok "$tmp/w1" && echo safetensors)
check "the trained ControlNet downloads as safetensors (got $code, ${valid:-not safetensors})" \
    test "$code $valid" = "200 safetensors"
phase train

# 7. A new container on the same volume (as after an upgrade: the old one's
# read-only root held nothing) finds the history and the same artefacts,
# which lie in the volume.
podman stop -t 30 "$run_id-a" >/dev/null 2>&1
podman rm "$run_id-a" >/dev/null 2>&1
chown "$UID_CNET" "$tmp/token"
chmod 0400 "$tmp/token"
start "$run_id-b" -v "$tmp/token:/run/secrets/cnet_token:ro"
check "the new container passes its HEALTHCHECK" wait_healthy "$run_id-b"
port=$(host_port "$run_id-b")
api "$port" GET "/v1/jobs?kind=train" "$tmp/jobs.json" >/dev/null
check "the job history survives (GET /v1/jobs)" test "$(json jobs.0.id <"$tmp/jobs.json") \
$(json jobs.0.state <"$tmp/jobs.json")" = "$job succeeded"
code=$(api "$port" GET "/v1/jobs/$job/artifacts/$weights" "$tmp/w2")
check "the artefact survives, byte for byte (got $code)" sh -c "[ $code = 200 ] && cmp -s '$tmp/w1' '$tmp/w2'"
mnt=$(podman volume inspect -f '{{.Mountpoint}}' "$vol")
in_vol=$(find "$mnt" -path "*$job*" -name "$weights" | head -n 1)
check "the artefact lies in the volume ($mnt)" sh -c "[ -n '$in_vol' ] && cmp -s '$tmp/w1' '$in_vol'"
podman stop -t 30 "$run_id-b" >/dev/null 2>&1
phase restart

# 8. compose.yaml's CPU service under podman-compose, the file as it ships
# (podman-compose 1.0 has no --profile: the service is named instead), on
# this run's image (so it builds nothing) and a free port.
mkdir -p "$tmp/compose/docker"
cp docker/compose.yaml "$compose_file"
cp -r "$tmp/models" "$tmp/compose/models"
printf '%s' "$token" >"$tmp/compose/docker/cnet_token"
printf 'hf_unused' >"$tmp/compose/docker/hf_token"
chown "$UID_CNET" "$tmp/compose/docker/cnet_token" "$tmp/compose/docker/hf_token"
chmod 0400 "$tmp/compose/docker/cnet_token" "$tmp/compose/docker/hf_token"
CNET_CPU_IMAGE=$IMAGE
CNET_CPU_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CNET_CPU_IMAGE CNET_CPU_PORT
if podman-compose -f "$compose_file" -p "$proj" up -d cnet-cpu >"$tmp/compose.log" 2>&1; then
    check "podman-compose up -d cnet-cpu" true
else
    check "podman-compose up -d cnet-cpu: $(tail -n 5 "$tmp/compose.log")" false
fi
cc=${proj}_cnet-cpu_1
check "the compose service passes its healthcheck" wait_healthy "$cc"
code=$(api "$CNET_CPU_PORT" GET /v1/models "$tmp/models.json")
check "the compose service answers with the token secret on port $CNET_CPU_PORT (got $code)" \
    test "$code $(json models.0.name <"$tmp/models.json")" = "200 demo"
podman-compose -f "$compose_file" -p "$proj" down -v >>"$tmp/compose.log" 2>&1
check "podman-compose down removes the container and its volume" sh -c \
    "! podman container exists $cc && ! podman volume exists ${proj}_cnet-data"
phase compose
summary "$NAME"
