#!/bin/sh
# The layering of the house, checked on every #include "..." of the product
# code (engine/, kernels/, api/, server/: .c, .h, .cu, .cuh). A failure names
# file:line, the included path and the rule it breaks. Tests (tests/) may
# include anything, backends included: they compare one against the other.
#
# The rules:
#   resolve    every include names an existing file from the repository root
#              ("engine/core/tensor.h"), so no rule below can be dodged;
#   engine     engine/ includes nothing of server/ or api/;
#   rooms      engine's rooms include only themselves and rooms of a lower
#              level (below); rooms on one level are siblings and include
#              neither each other nor anything above;
#   kernels    kernels/<backend>/ includes only engine/core/, kernels/common/
#              and its own folder; kernels/backend_open.c (the registry) may
#              include both backends as well;
#   api        api/ includes nothing of server/;
#   backend    only the registry names a concrete backend: engine/, api/ and
#              server/ include no kernels/cpu/ or kernels/cuda/ header and call
#              no cpu_* / cuda_* function and no backend constructor
#              (cnet_backend_cpu_init...: open through cnet_backend_open;
#              comments and strings aside).
#
# The levels of engine's rooms, read off the include graph as it is (no
# arrow ran the wrong way when this test was written):
#   0 core                       tensors, the backend table, errors, files
#   1 config image text          each needs core only
#   2 models sched data          models, sched read config; data reads image
#   3 pipeline init              pipeline runs models + sched + text; init
#                                makes models' weights (config, models, text)
#   4 train                      data, pipeline, init (a ControlNet starts
#                                from the UNet, controlnet_init) and the rest
# A new room gets a level here before it may be included.
#
# Self-check: the same scan runs over a planted tree in a temporary folder
# (one wrong-way include or call per rule, plus lines the rules allow) and
# must report exactly the planted lines.
set -u
. tests/lib/lib_check.sh

engine_levels="core=0 config=1 image=1 text=1 models=2 sched=2 data=2 pipeline=3 init=3 train=4"

# layers_scan ROOT: prints one line per broken rule,
# "RULE file:line: includes "path"" (or "calls name(").
layers_scan() (
    cd "$1" || exit 2
    dirs=
    for d in engine kernels api server; do [ -d "$d" ] && dirs="$dirs $d"; done
    [ -n "$dirs" ] || exit 0
    # shellcheck disable=SC2086 # $dirs: a list of folder names
    grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' --include='*.c' --include='*.h' \
        --include='*.cu' --include='*.cuh' $dirs |
        while IFS= read -r hit; do
            file=${hit%%:*}
            rest=${hit#*:}
            line=${rest%%:*}
            inc=${rest#*\"}
            inc=${inc%%\"*}
            [ -f "$inc" ] || echo "resolve $file:$line: includes \"$inc\", not a file from the repository root"
            echo "$file $line $inc"
        done | awk -v levels="$engine_levels" '
        BEGIN { n = split(levels, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); lvl[p[1]] = p[2] } }
        /^resolve / { print; next }
        function room(path, parts) { split(path, parts, "/"); return parts[2] }
        function bad(rule, why) { printf "%s %s:%s: includes \"%s\": %s\n", rule, $1, $2, $3, why }
        {
            src = $1; inc = $3
            if (src ~ /^engine\// && inc ~ /^(server|api)\//)
                bad("engine", "engine/ never includes server/ or api/")
            if (src ~ /^engine\// && inc ~ /^engine\//) {
                a = room(src); b = room(inc)
                if (!(a in lvl)) bad("rooms", "engine/" a " has no level in tests/unit/layers_test.sh")
                else if (!(b in lvl)) bad("rooms", "engine/" b " has no level in tests/unit/layers_test.sh")
                else if (a != b && lvl[b] >= lvl[a])
                    bad("rooms", "engine/" a " (level " lvl[a] ") may include only lower rooms, not engine/" b " (level " lvl[b] ")")
            }
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
    # Calls of a concrete backend's functions, with comments and strings cut.
    for d in $dirs; do
        case $d in engine | api | server) grep -rnE '(cpu|cuda)_[A-Za-z0-9_]*[[:space:]]*\(' \
            --include='*.c' --include='*.h' "$d" ;; esac
    done | awk '{
        file = $0; sub(/:.*/, "", file); rest = substr($0, length(file) + 2)
        line = rest; sub(/:.*/, "", line); code = substr(rest, length(line) + 2)
        gsub(/"[^"]*"/, "\"\"", code)
        while ((c0 = index(code, "/*")) > 0) {
            c1 = index(substr(code, c0 + 2), "*/")
            code = substr(code, 1, c0 - 1) (c1 ? substr(code, c0 + c1 + 3) : "")
        }
        sub(/\/\/.*/, "", code)
        if (code ~ /^[ \t]*\*/) next
        if (match(code, /(^|[^A-Za-z0-9_])(cpu|cuda)_[A-Za-z0-9_]*[ \t]*\(/)) {
            name = substr(code, RSTART, RLENGTH); sub(/^[^a-z]/, "", name); sub(/[ \t]*\($/, "", name)
            printf "backend %s:%s: calls %s(): only the registry (kernels/backend_open.c) names a concrete backend\n", file, line, name
        } else if (code !~ /^(int|void)[ \t]/ && match(code, /cnet_backend_(cpu|cuda)_init[ \t]*\(/)) {
            name = substr(code, RSTART, RLENGTH); sub(/[ \t]*\($/, "", name)
            printf "backend %s:%s: calls %s(): open a backend through cnet_backend_open (kernels/backend_open.c)\n", file, line, name
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
for rule in resolve engine rooms kernels api backend; do
    check "layers_$rule" rule_clean "$rule"
done

# The planted tree: each "# want" file below breaks one rule on line 2.
mkdir -p "$plant/engine/core" "$plant/engine/models" "$plant/engine/train" "$plant/engine/text" \
    "$plant/engine/image" "$plant/engine/attic" "$plant/engine/init" "$plant/kernels/cpu" "$plant/kernels/cuda" \
    "$plant/kernels/common" "$plant/api" "$plant/server/cli" "$plant/server/store"
for f in engine/core/error.h engine/core/backend.h engine/models/unet.h engine/train/trainer.h \
    engine/text/tokenizer.h engine/image/image.h engine/attic/old.h kernels/cpu/cpu_ops.h \
    kernels/cuda/cuda_ops.h kernels/common/vexp.h api/api.h server/store/jobs.h; do
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
# Allowed: own room, lower rooms, the registry, names in comments and strings.
plant_file engine/train/trainer.c '#include "engine/train/trainer.h"' '#include "engine/models/unet.h"' \
    '#include "engine/text/tokenizer.h"' '#include "engine/core/error.h"' \
    '/* cpu_gemm() is not called here */' ' * cuda_init() neither' \
    'puts("cpu_x(y)"); // cuda_y()' 'be->gemm(be); cnet_backend_open(be, "cpu", NULL, 0, err); mycpu_x();'
plant_file engine/init/model_init.c '    if ((rc = cnet_backend_cpu_init(&be, err))) return rc;'
plant_file kernels/cpu/norm.c '#include "kernels/cpu/cpu_ops.h"' '#include "kernels/common/vexp.h"' \
    '#include "engine/core/backend.h"' 'cpu_gemm(be);'
plant_file kernels/backend_open.c '#include "kernels/cuda/cuda_ops.h"' '#include "kernels/cpu/cpu_ops.h"'
plant_file server/cli/cmd_serve.c '#include "api/api.h"' '#include "engine/models/unet.h"'

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
    layers_scan "$plant" | grep -qxF 'rooms engine/models/unet.c:2: includes "engine/train/trainer.h": engine/models (level 2) may include only lower rooms, not engine/train (level 4)'
}
check layers_selfcheck_message message_names_rule

summary layers_test
