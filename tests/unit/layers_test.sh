#!/bin/sh
# The layering of the house, checked on every #include "..." of the product
# code (engine/, kernels/, api/, server/: .c, .h, .cu, .cuh), and on every
# #include <...> that names a repository path (<engine/...>, <kernels/...>,
# <api/...>, <server/...>: with -I. they compile too, so they may not dodge
# a rule). A failure names file:line, the included path and the rule it
# breaks. Tests (tests/) may include anything, backends included: they
# compare one against the other.
#
# The rules:
#   resolve    every include names an existing file from the repository root
#              ("engine/core/tensor.h"), so no rule below can be dodged;
#   engine     engine/ includes nothing of server/ or api/;
#   rooms      engine's rooms include only themselves and rooms of a lower
#              level (below); rooms on one level are siblings and include
#              neither each other nor anything above;
#   server_rooms  the same for server's rooms, with their own levels (below);
#   kernels    kernels/<backend>/ includes only engine/core/, kernels/common/
#              and its own folder; kernels/backend_open.c (the registry) may
#              include both backends as well;
#   api        api/ includes nothing of server/;
#   backend    only the registry names a concrete backend: engine/, api/ and
#              server/ include no kernels/cpu/ or kernels/cuda/ header, name no
#              cpu_* / cuda_* identifier (a call, or a function taken as a
#              value: `= cpu_gemm;`; a struct member `x.cpu_y` is not one)
#              and call no backend constructor (cnet_backend_cpu_init...:
#              open through cnet_backend_open). Comments (block comments
#              followed across lines) and strings aside.
#
# The levels of engine's rooms, read off the include graph as it is (no
# arrow ran the wrong way when this test was written):
#   0 core                       tensors, the backend table, errors, files
#   1 config image text          each needs core only
#     tensorboard parquet        event files (train's trackers write them);
#                                Parquet files (data reads Hub datasets)
#     dist                       the ranks' collectives (MPI) over core's buffers
#   2 models sched data          models, sched read config; data reads image, parquet
#   3 annotators                 control-image preprocessors: image, and models
#                                for the network ones (depth)
#   4 pipeline init convert      pipeline runs models + sched + text and the
#                                annotators; init
#                                makes models' weights (config, models, text);
#                                convert maps original-layout files onto the
#                                models' declared parameters (config, models)
#   5 train                      data, pipeline, init (a ControlNet starts
#                                from the UNet, controlnet_init) and the rest
# The levels of server's rooms, read off the include graph the same way
# (after server/bench stopped parsing argv through server/cli):
#   0 store hub                  the job store; the Hub client
#   1 workers golden bench       workers run jobs of the store (pushes go to
#                                the Hub); golden checks and benchmarks stand
#                                alone over engine/ and api/
#   2 http                       routes over the store, workers and the Hub
#   3 cli                        the commands: serve starts http, golden
#                                and bench run their rooms
# A new room gets a level here before it may be included.
#
# Self-check: the same scan runs over a planted tree in a temporary folder
# (one wrong-way include or call per rule, plus lines the rules allow) and
# must report exactly the planted lines.
set -u
. tests/lib/lib_check.sh

engine_levels="core=0 dist=1 config=1 image=1 text=1 tensorboard=1 parquet=1 models=2 sched=2 data=2 annotators=3 pipeline=4 init=4 convert=4 train=5"
server_levels="store=0 hub=0 workers=1 golden=1 bench=1 a1111=1 http=2 cli=3"

# layers_scan ROOT: prints one line per broken rule,
# "RULE file:line: includes "path"" (or "calls name(").
layers_scan() (
    cd "$1" || exit 2
    dirs=
    for d in engine kernels api server; do [ -d "$d" ] && dirs="$dirs $d"; done
    [ -n "$dirs" ] || exit 0
    # shellcheck disable=SC2086 # $dirs: a list of folder names
    grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*("|<(engine|kernels|api|server)/)' \
        --include='*.c' --include='*.h' --include='*.cu' --include='*.cuh' $dirs |
        while IFS= read -r hit; do
            file=${hit%%:*}
            rest=${hit#*:}
            line=${rest%%:*}
            inc=${rest#*include}
            inc=${inc#"${inc%%[!	 ]*}"}
            case $inc in
            \"*) inc=${inc#\"} && inc=${inc%%\"*} ;;
            *) inc=${inc#<} && inc=${inc%%>*} ;;
            esac
            [ -f "$inc" ] || echo "resolve $file:$line: includes \"$inc\", not a file from the repository root"
            echo "$file $line $inc"
        done | awk -v elevels="$engine_levels" -v slevels="$server_levels" '
        function levels(text, lvl, n, i, kv, p) {
            n = split(text, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); lvl[p[1]] = p[2] }
        }
        BEGIN { levels(elevels, elvl); levels(slevels, slvl) }
        /^resolve / { print; next }
        function room(path, parts) { split(path, parts, "/"); return parts[2] }
        function bad(rule, why) { printf "%s %s:%s: includes \"%s\": %s\n", rule, $1, $2, $3, why }
        # rooms(RULE, TREE, LEVELS): within TREE/, a room includes only itself and lower rooms.
        function rooms(rule, tree, lvl, a, b) {
            if (substr($1, 1, length(tree) + 1) != tree "/" || substr($3, 1, length(tree) + 1) != tree "/") return
            a = room($1); b = room($3)
            if (!(a in lvl)) bad(rule, tree "/" a " has no level in tests/unit/layers_test.sh")
            else if (!(b in lvl)) bad(rule, tree "/" b " has no level in tests/unit/layers_test.sh")
            else if (a != b && lvl[b] >= lvl[a])
                bad(rule, tree "/" a " (level " lvl[a] ") may include only lower rooms, not " tree "/" b " (level " lvl[b] ")")
        }
        {
            src = $1; inc = $3
            if (src ~ /^engine\// && inc ~ /^(server|api)\//)
                bad("engine", "engine/ never includes server/ or api/")
            rooms("rooms", "engine", elvl)
            rooms("server_rooms", "server", slvl)
            if (src == "kernels/backend_open.c") {
                if (inc !~ /^(engine\/core|kernels\/common|kernels\/cpu|kernels\/cuda)\//)
                    bad("kernels", "the registry includes only engine/core/, kernels/common/ and the backends")
            } else if (src ~ /^kernels\//) {
                own = "kernels/" room(src) "/"
                if (inc !~ /^(engine\/core|kernels\/common)\// && substr(inc, 1, length(own)) != own)
                    bad("kernels", "kernels/ include only engine/core/, kernels/common/ and their own backend folder")
            }
            if (src ~ /^api\// && inc ~ /^server\//) bad("api", "api/ never includes server/")
            if (src ~ /^(engine|api|server)\// && inc ~ /^kernels\/(cpu|cuda)\//)
                bad("backend", "only the registry (kernels/backend_open.c) names a concrete backend")
        }'
    # Names of a concrete backend's functions, with comments and strings cut
    # (a block comment is followed from its /* to its */ across lines) and
    # #include lines left to the rules above.
    # shellcheck disable=SC2016 # the program is awk's, its $ are awk's
    for d in $dirs; do
        case $d in engine | api | server) find "$d" -type f \( -name '*.c' -o -name '*.h' \) ;; esac
    done | sort | xargs -r awk -v sq="'" '
    FNR == 1 { in_comment = 0 }
    {
        code = $0
        if (in_comment) {
            if (!(c1 = index(code, "*/"))) next
            code = substr(code, c1 + 2); in_comment = 0
        }
        gsub(sq "\\\\?." sq, "0", code)
        gsub(/"([^"\\]|\\.)*"/, "\"\"", code)
        for (;;) {
            c0 = index(code, "/*"); c2 = index(code, "//")
            if (c2 && (!c0 || c2 < c0)) { code = substr(code, 1, c2 - 1); break }
            if (!c0) break
            c1 = index(substr(code, c0 + 2), "*/")
            if (!c1) { code = substr(code, 1, c0 - 1); in_comment = 1; break }
            code = substr(code, 1, c0 - 1) " " substr(code, c0 + c1 + 3)
        }
        if (code ~ /^[ \t]*#[ \t]*include/) next # the include rules judge these
        if (match(code, /(^|[^A-Za-z0-9_.>])(cpu|cuda)_[A-Za-z0-9_]*[ \t]*\(?/)) {
            name = substr(code, RSTART, RLENGTH); sub(/^[^a-z]/, "", name)
            call = name ~ /\($/; sub(/[ \t]*\(?$/, "", name)
            if (call)
                printf "backend %s:%d: calls %s(): only the registry (kernels/backend_open.c) names a concrete backend\n", FILENAME, FNR, name
            else
                printf "backend %s:%d: names %s: only the registry (kernels/backend_open.c) names a concrete backend\n", FILENAME, FNR, name
        } else if (code !~ /^(int|void)[ \t]/ && match(code, /cnet_backend_(cpu|cuda)_init[ \t]*\(/)) {
            name = substr(code, RSTART, RLENGTH); sub(/[ \t]*\($/, "", name)
            printf "backend %s:%d: calls %s(): open a backend through cnet_backend_open (kernels/backend_open.c)\n", FILENAME, FNR, name
        }
    }'
)

# rule_clean RULE: true when the real tree breaks no RULE; prints what it breaks.
rule_clean() {
    found=$(grep "^$1 " "$scan" | cut -d' ' -f2-)
    [ -z "$found" ] && return 0
    echo "$found"
    return 1
}

scan=$(mktemp)
plant=$(mktemp -d)
trap 'rm -rf "$scan" "$plant"' EXIT

layers_scan . >"$scan"
for rule in resolve engine rooms server_rooms kernels api backend; do
    check "layers_$rule" rule_clean "$rule"
done

# The planted tree: each "# want" file below breaks one rule on line 2.
mkdir -p "$plant/engine/core" "$plant/engine/models" "$plant/engine/train" "$plant/engine/text" \
    "$plant/engine/image" "$plant/engine/attic" "$plant/engine/init" "$plant/kernels/cpu" "$plant/kernels/cuda" \
    "$plant/kernels/common" "$plant/api" "$plant/engine/pipeline" "$plant/server/cli" \
    "$plant/server/store" "$plant/server/hub" "$plant/server/workers" "$plant/server/golden" \
    "$plant/server/bench" "$plant/server/http" "$plant/server/attic"
for f in engine/core/error.h engine/core/backend.h engine/models/unet.h engine/train/trainer.h \
    engine/text/tokenizer.h engine/image/image.h engine/attic/old.h kernels/cpu/cpu_ops.h \
    kernels/cuda/cuda_ops.h kernels/common/vexp.h api/api.h server/store/jobs.h \
    server/hub/hub.h server/workers/pool.h server/golden/golden.h server/bench/bench_model.h \
    server/http/http_server.h server/cli/cli_args.h server/attic/old.h; do
    echo "/* $f */" >"$plant/$f"
done
plant_file() { # plant_file PATH INCLUDE [MORE LINES]
    path=$1
    shift
    printf '/* planted */\n' >"$plant/$path"
    for l in "$@"; do printf '%s\n' "$l" >>"$plant/$path"; done
}
plant_file engine/models/unet.c '#include "engine/train/trainer.h"'
plant_file engine/text/tokenizer.c '#include "engine/image/image.h"'
plant_file engine/core/tensor.c '#include "engine/models/unet.h"'
plant_file engine/models/attention.c '#include "engine/attic/old.h"'
plant_file engine/train/train_step.c '#include "server/store/jobs.h"'
plant_file engine/image/canny.c '  #  include "api/api.h"'
plant_file kernels/cpu/conv.c '#include "kernels/cuda/cuda_ops.h"'
plant_file kernels/cuda/cuda_conv.cu '#include "engine/models/unet.h"'
plant_file kernels/common/util.h '#include "kernels/cpu/cpu_ops.h"'
plant_file api/api_render.c '#include "server/store/jobs.h"'
plant_file server/cli/cmd_bench.c '#include "kernels/cpu/cpu_ops.h"'
plant_file server/store/jobs.c '#include "store/jobs.h"'
plant_file engine/models/resnet.c '/* x */ cpu_gemm(be, c, a, b, 1, 1, 1, 0, 0, 1.0f, 0.0f);'
plant_file api/api_job.c '    return cuda_device_count();'
plant_file server/store/jobs_lease.c '#include "server/workers/pool.h"'
plant_file server/bench/bench_serve.c '#include "server/cli/cli_args.h"'
plant_file server/golden/golden_io.c '#include "server/bench/bench_model.h"'
plant_file server/hub/hub_push.c '#include "server/attic/old.h"'
plant_file server/http/http_jobs.c '#include "server/cli/cli_args.h"'
# <...> includes of a repository path are scanned like "..." ones.
plant_file engine/models/vae.c '#include <kernels/cpu/cpu_ops.h>'
plant_file engine/core/arena.c '# include <server/store/jobs.h>'
plant_file server/workers/worker.c '#include <server/http/http_server.h>'
# A line of code that starts with `*` is code, not a comment.
plant_file engine/pipeline/generate.c '    *out = cpu_x(be, 1);'
# A concrete backend's function taken as a value, without a call.
plant_file server/workers/pool.c '    be->gemm = cpu_gemm;'
plant_file engine/core/nn.c '    void (*f)(void) = (void (*)(void))cuda_conv2d_forward;'
# Allowed: own room, lower rooms, the registry, names in comments and strings.
plant_file engine/train/trainer.c '#include "engine/train/trainer.h"' '#include "engine/models/unet.h"' \
    '#include "engine/text/tokenizer.h"' '#include "engine/core/error.h"' \
    '/* cpu_gemm() is not called here */' '/* nor in a block comment:' ' * cuda_init(), cpu_gemm;' \
    ' */ int x; /* cpu_y() */' 'puts("cpu_x(y)"); // cuda_y() /* cpu_z()' \
    'be->gemm(be); cnet_backend_open(be, "cpu", NULL, 0, err); mycpu_x();' \
    "c = '\"'; puts(\"cpu_q()\"); s.cpu_threads = p->cuda_stream;" '#include <stdio.h>'
plant_file engine/init/model_init.c '    if ((rc = cnet_backend_cpu_init(&be, err))) return rc;'
plant_file kernels/cpu/norm.c '#include "kernels/cpu/cpu_ops.h"' '#include "kernels/common/vexp.h"' \
    '#include "engine/core/backend.h"' 'cpu_gemm(be);'
plant_file kernels/backend_open.c '#include "kernels/cuda/cuda_ops.h"' '#include "kernels/cpu/cpu_ops.h"'
plant_file server/cli/cmd_serve.c '#include "api/api.h"' '#include "engine/models/unet.h"' \
    '#include "server/http/http_server.h"' '#include "server/bench/bench_model.h"' \
    '#include <server/store/jobs.h>' '#include <curl/curl.h>'
plant_file server/workers/runner.c '#include "server/workers/pool.h"' '#include "server/store/jobs.h"' \
    '#include "server/hub/hub.h"' '#include "engine/models/unet.h"'
plant_file server/http/http_server.c '#include "server/workers/pool.h"' '#include "server/golden/golden.h"'

want=$(mktemp)
trap 'rm -rf "$scan" "$plant" "$want"' EXIT
cat >"$want" <<'EOF'
rooms engine/models/unet.c:2
rooms engine/text/tokenizer.c:2
rooms engine/core/tensor.c:2
rooms engine/models/attention.c:2
engine engine/train/train_step.c:2
engine engine/image/canny.c:2
kernels kernels/cpu/conv.c:2
kernels kernels/cuda/cuda_conv.cu:2
kernels kernels/common/util.h:2
api api/api_render.c:2
backend server/cli/cmd_bench.c:2
resolve server/store/jobs.c:2
backend engine/models/resnet.c:2
backend api/api_job.c:2
backend engine/init/model_init.c:2
server_rooms server/store/jobs_lease.c:2
server_rooms server/bench/bench_serve.c:2
server_rooms server/golden/golden_io.c:2
server_rooms server/hub/hub_push.c:2
server_rooms server/http/http_jobs.c:2
backend engine/models/vae.c:2
engine engine/core/arena.c:2
server_rooms server/workers/worker.c:2
backend engine/pipeline/generate.c:2
backend server/workers/pool.c:2
backend engine/core/nn.c:2
EOF
planted_found() {
    got=$(layers_scan "$plant" | cut -d: -f1-2 | sort)
    if [ "$got" != "$(sort "$want")" ]; then
        echo "planted violations expected:"
        sort "$want"
        echo "reported:"
        layers_scan "$plant"
        return 1
    fi
}
check layers_selfcheck_planted planted_found
# A report names file:line, the included path and the rule.
message_names_rule() {
    layers_scan "$plant" | grep -xF 'rooms engine/models/unet.c:2: includes "engine/train/trainer.h": engine/models (level 2) may include only lower rooms, not engine/train (level 5)' >/dev/null
}
check layers_selfcheck_message message_names_rule
# The server's rooms are reported the same way, and a value use is named as one.
server_message() {
    layers_scan "$plant" | grep -xF 'server_rooms server/bench/bench_serve.c:2: includes "server/cli/cli_args.h": server/bench (level 1) may include only lower rooms, not server/cli (level 3)' >/dev/null &&
        layers_scan "$plant" | grep -xF 'backend server/workers/pool.c:2: names cpu_gemm: only the registry (kernels/backend_open.c) names a concrete backend' >/dev/null
}
check layers_selfcheck_server_message server_message

summary layers_test
