#!/bin/sh
# Data-parallel cnet train over Open MPI on CPU ranks (issue 17): 2 ranks
# with --train_batch_size 2 against one process with batch 4 (ControlNet and
# train-unet), rank 0 alone
# writing, a rank killed mid-run, a rank that hangs, and resume; the same 2
# ranks with --shard_optimizer (ZeRO-1/2) against unsharded, and resumes of
# sharded checkpoints on other rank counts. Skipped (with a line saying
# so) when mpirun is absent or cnet was built without MPI.
#
# The bound: the ranks compute the same sums in another order (each rank's
# half-batch gradient, then their sum, instead of one sum over 4 samples),
# so the gradients agree to float32 rounding (the logged grad_norm to about
# 1e-7 relative). AdamW divides by sqrt(v): an element whose gradient is
# ~0 moves by about +-lr whatever its size, so a rounding difference there
# may flip its step; the largest difference is then up to 2 lr per step
# (uninformative) but such elements are rare: the MEAN |difference| over
# all weights stays at float32 rounding (measured 2.3e-8 after 6 steps of
# lr 1e-4), while a wrong sum (each rank's own half batch, no allreduce)
# moves the weights by about lr per step (measured 1.2e-4). The check:
# mean |a - b| < 1e-6, 1/100 of the lr.
#
# --shard_optimizer (ZeRO-1/2) against the same 2 ranks unsharded: bit for
# bit. Two addends sum to the same float in either order, so the
# reduce-scatter gives each rank the very bits of the allreduce for its
# shard; a shard's AdamW is the same element-wise float32 math as the whole
# block's (8-bit: its shards are cut at quantisation-block starts); and the
# clip coefficient is exactly 1 while the norm is under max_grad_norm. When
# clipping engages (--max_grad_norm 0.1 below the logged norms ~0.25), the
# norm is the sum of the ranks' shard sums of squares (each rounded to
# float32) instead of one sum: the coefficient may differ in its last bit,
# so that run is held to the bound above (measured: 0, bit-equal). Resumes
# across rank counts, sharded or not, are held to the same bound as the
# unsharded resume. The memory: each rank's AdamW state is its shard's, the
# figure the trainer logs (the largest rank's, gathered from the ranks'
# allocations) at most half of the unsharded one (+ the MB rounding).
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
STDIFF=$BUILD/tests/tool_stdiff
. tests/lib/lib_check.sh
if ! command -v mpirun >/dev/null 2>&1; then
    echo "train_mpi_test: mpirun not found (apt-get install openmpi-bin libopenmpi-dev): skipped"
    summary train_mpi_test
    exit $?
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# one thread per rank: 2 ranks on 2 cores
export OMP_NUM_THREADS=1

root=""
[ "$(id -u)" = 0 ] && root=--allow-run-as-root

$CNET init-model --out "$tmp/model" --preset tiny --seed 1 >/dev/null 2>&1
# 14 samples, global batch 4: the epoch's last batch has 2, all of rank 0's
# slice (rank 1 has none and still joins the sum)
$CNET dataset make-fill --n 14 --size 16 --out "$tmp/fill" >/dev/null 2>&1
common="--pretrained_model_name_or_path $tmp/model --train_data_dir $tmp/fill --resolution 16
        --learning_rate 1e-4 --seed 5 --max_train_steps 6 --checkpointing_steps 2"
common=$(echo $common)

if $CNET train $common --train_batch_size 2 --num_processes 2 --output_dir "$tmp/two" \
    >"$tmp/two.log" 2>&1; then :; else
    if grep -q "built without MPI" "$tmp/two.log"; then
        echo "train_mpi_test: cnet was built without MPI (libopenmpi-dev): skipped"
        summary train_mpi_test
        exit $?
    fi
    cat "$tmp/two.log"
fi
$CNET train $common --train_batch_size 4 --output_dir "$tmp/one" >"$tmp/one.log" 2>&1

# The collectives themselves (sums across buckets, in place and staged
# through host memory, broadcast, the weights check naming a rank):
# tests/tools/tool_dist.c on 2 ranks.
mpirun $root --oversubscribe -np 2 $BUILD/tests/tool_dist >"$tmp/dist.log" 2>&1
dist_status=$?
check dist_collectives sh -c "test $dist_status -eq 0 && test \$(grep -c ' ok\$' '$tmp/dist.log') -eq 28"

mean_below() { # A B BOUND: mean |a - b| of the weight files below BOUND
    d=$($STDIFF "$1" "$2") || return 1
    echo "    $d"
    echo "$d" | awk -v b="$3" '{ exit !($4 < b) }'
}
W=diffusion_pytorch_model.safetensors
check two_ranks_run test -s "$tmp/two/$W" -a -d "$tmp/two/checkpoint-6"
check two_ranks_equal_doubled_batch mean_below "$tmp/one/$W" "$tmp/two/$W" 1e-6
# the bound tells a right sum from a wrong one: half the batch is far off
$CNET train $common --train_batch_size 2 --output_dir "$tmp/half" >/dev/null 2>&1
check half_batch_is_not_equal sh -c "! $STDIFF '$tmp/one/$W' '$tmp/half/$W' |
    awk '{ exit !(\$4 < 1e-6) }'"
# AdamW hides a gradient's scale: the logged norms show it (the mean over
# the global batch, not a sum over the ranks), equal to float32 rounding
grad_norms() { grep -o '"grad_norm": [0-9.e-]*' "$1" | cut -d' ' -f2; }
grad_norms "$tmp/one/logs/metrics.jsonl" >"$tmp/g1"
grad_norms "$tmp/two/logs/metrics.jsonl" >"$tmp/g2"
check same_grad_norms sh -c "test -s '$tmp/g1' && paste '$tmp/g1' '$tmp/g2' |
    awk '{ d = \$1 - \$2; if (d < 0) d = -d; if (\$2 == \"\" || d > 1e-5 * \$1) bad = 1 } END { exit bad }'"
check effective_batch_logged grep -q "2 ranks, 4 samples per optimizer step" "$tmp/two.log"
check one_rank_logs test "$(grep -c '^step ' "$tmp/two.log")" -eq 6
check same_steps_and_epochs test "$(grep -o '"epoch": [0-9]*' "$tmp/two/logs/metrics.jsonl" |
    tr '\n' ' ')" = "$(grep -o '"epoch": [0-9]*' "$tmp/one/logs/metrics.jsonl" | tr '\n' ' ')"

# --shard_optimizer: the same run with each rank keeping half of AdamW's
# state (float32, then 8-bit), and with clipping engaged
ckpt_same() { # A B FILE...: the same optimizer files in checkpoint-6 of runs A and B
    a=$1 b=$2
    shift 2
    for f; do cmp -s "$a/checkpoint-6/$f" "$b/checkpoint-6/$f" || return 1; done
}
adam_mb() { sed -n 's/^cnet train: AdamW state \([0-9.]*\) MB.*/\1/p' "$1"; }
adam_mb_max() { sed -n 's/^cnet train: AdamW state.*at most \([0-9.]*\) MB on any rank.*/\1/p' "$1"; }
half_or_less() { # UNSHARDED_LOG SHARDED_LOG
    awk -v x="$(adam_mb "$1")" -v y="$(adam_mb_max "$2")" \
        'BEGIN { print "    " y " MB of " x; exit !(x > 0 && y > 0 && y <= x / 2 + 0.01) }'
}
F32="optimizer_exp_avg.safetensors optimizer_exp_avg_sq.safetensors"
two="$common --train_batch_size 2 --num_processes 2"
$CNET train $two --shard_optimizer --output_dir "$tmp/sh" >"$tmp/sh.log" 2>&1
check shard_weights_bit_equal cmp -s "$tmp/two/$W" "$tmp/sh/$W"
check shard_state_bit_equal ckpt_same "$tmp/two" "$tmp/sh" $F32
check shard_memory_half half_or_less "$tmp/two.log" "$tmp/sh.log"
$CNET train $two --use_8bit_adam --output_dir "$tmp/two8" >"$tmp/two8.log" 2>&1
$CNET train $two --use_8bit_adam --shard_optimizer --output_dir "$tmp/sh8" >"$tmp/sh8.log" 2>&1
check shard_8bit_weights_bit_equal sh -c "test -s '$tmp/two8/$W' && cmp -s '$tmp/two8/$W' '$tmp/sh8/$W'"
check shard_8bit_state_bit_equal ckpt_same "$tmp/two8" "$tmp/sh8" optimizer_8bit.safetensors
check shard_8bit_memory_half half_or_less "$tmp/two8.log" "$tmp/sh8.log"
$CNET train $two --max_grad_norm 0.1 --output_dir "$tmp/twoc" >/dev/null 2>&1
$CNET train $two --max_grad_norm 0.1 --shard_optimizer --output_dir "$tmp/shc" >/dev/null 2>&1
check shard_clipped_equal mean_below "$tmp/twoc/$W" "$tmp/shc/$W" 1e-6
# one process: nothing to shard, said so, bit for bit
$CNET train $common --train_batch_size 4 --shard_optimizer --output_dir "$tmp/one_sh" \
    >"$tmp/one_sh.log" 2>&1
check shard_one_process_noop sh -c "cmp -s '$tmp/one/$W' '$tmp/one_sh/$W' &&
    grep -q 'shard_optimizer: one process, nothing to shard' '$tmp/one_sh.log'"

# cnet train-unet over the same trainer (the EMA saved, --noise_offset's
# draws sliced per rank as the noise's, Min-SNR weights per sample).
FIXTURES=${FIXTURES:-tests/fixtures}
unet="--pretrained_model_name_or_path $FIXTURES/tiny-sd --train_data_dir $tmp/fill --resolution 16
      --seed 3 --use_ema --noise_offset 0.1 --snr_gamma 5 --max_train_steps 4"
unet=$(echo $unet)
$CNET train-unet $unet --train_batch_size 4 --output_dir "$tmp/u1" >/dev/null 2>&1
$CNET train-unet $unet --train_batch_size 2 --num_processes 2 --output_dir "$tmp/u2" >/dev/null 2>&1
check train_unet_two_ranks mean_below "$tmp/u1/unet/$W" "$tmp/u2/unet/$W" 1e-6
$CNET train-unet $unet --train_batch_size 2 --num_processes 2 --shard_optimizer \
    --output_dir "$tmp/u2s" >/dev/null 2>&1
# (grad norms ~3 > max_grad_norm 1: clipping engages, so the bound; measured
# bit-equal)
check train_unet_sharded_equal mean_below "$tmp/u2/unet/$W" "$tmp/u2s/unet/$W" 1e-6

# The same binary under a hand-written mpirun, each rank told another
# output_dir: rank 0's gets everything, rank 1's nothing (rank 0 alone
# writes; its folder exists, empty, so that a write there would succeed).
# A ControlNet folder to start from: no config written first.
mkdir -p "$tmp/out1"
mpirun $root --oversubscribe -np 2 sh -c "exec $CNET train $common --train_batch_size 2 \
    --controlnet_model_name_or_path $tmp/one --output_dir $tmp/out\$OMPI_COMM_WORLD_RANK" \
    >"$tmp/mpirun.log" 2>&1
check mpirun_rank0_writes test -s "$tmp/out0/$W" -a -d "$tmp/out0/checkpoint-6" \
    -a -s "$tmp/out0/logs/metrics.jsonl"
check mpirun_other_ranks_write_nothing test -z "$(ls -A "$tmp/out1")"

# A rank that fails by itself ends every rank, naming itself; refusals
# that hold for every rank do the same.
mpirun $root --oversubscribe -np 2 $CNET train $common --train_batch_size 2 --num_processes 3 \
    --output_dir "$tmp/bad" >"$tmp/bad.log" 2>&1
bad_status=$?
check launcher_mismatch_fails sh -c "test $bad_status -ne 0 && grep -q \
    'rank [01]: cnet train: --num_processes 3, but the launcher started 2 ranks' '$tmp/bad.log'"
check set_grads_to_none_refused sh -c "! $CNET train $common --train_batch_size 2 \
    --num_processes 2 --set_grads_to_none --output_dir '$tmp/bad2' >'$tmp/bad2.log' 2>&1 &&
    grep -q 'set_grads_to_none: one process only' '$tmp/bad2.log'"
check train_vae_refused sh -c "! $CNET train-vae $common --train_batch_size 2 \
    --num_processes 2 --output_dir '$tmp/bad3' >'$tmp/bad3.log' 2>&1 &&
    grep -q 'train-vae runs in one process' '$tmp/bad3.log'"

# Resume: from the 2-rank run's checkpoint on 2 ranks, bit for bit (the same
# sums in the same order), and on 1 process with the doubled batch (to the bound).
mkdir -p "$tmp/r2" "$tmp/r1"
cp -r "$tmp/two/checkpoint-2" "$tmp/r2/" && cp -r "$tmp/two/checkpoint-2" "$tmp/r1/"
$CNET train $common --train_batch_size 2 --num_processes 2 --output_dir "$tmp/r2" \
    --resume_from_checkpoint latest >"$tmp/r2.log" 2>&1
check resume_two_ranks_bit_exact cmp -s "$tmp/two/$W" "$tmp/r2/$W"
check resume_two_ranks_from_step_3 sh -c "! grep -q '^step 2/6' '$tmp/r2.log' &&
    grep -q '^step 3/6' '$tmp/r2.log'"
$CNET train $common --train_batch_size 4 --output_dir "$tmp/r1" \
    --resume_from_checkpoint latest >/dev/null 2>&1
check resume_other_rank_count mean_below "$tmp/one/$W" "$tmp/r1/$W" 1e-6

# Resume across rank counts, sharded or not: the checkpoint of 2 sharded
# ranks holds the whole state (the same files as unsharded), on 1 process
# to the bound and on 2 unsharded ranks bit for bit; 1 process's on 2
# sharded ranks to the bound.
mkdir -p "$tmp/rs1" "$tmp/rs2" "$tmp/rs3"
cp -r "$tmp/sh/checkpoint-2" "$tmp/rs1/" && cp -r "$tmp/sh/checkpoint-2" "$tmp/rs2/"
cp -r "$tmp/one/checkpoint-2" "$tmp/rs3/"
$CNET train $common --train_batch_size 4 --output_dir "$tmp/rs1" \
    --resume_from_checkpoint latest >/dev/null 2>&1
check resume_sharded_on_one_process mean_below "$tmp/one/$W" "$tmp/rs1/$W" 1e-6
$CNET train $two --output_dir "$tmp/rs2" --resume_from_checkpoint latest >/dev/null 2>&1
check resume_sharded_unsharded_bit_exact cmp -s "$tmp/two/$W" "$tmp/rs2/$W"
$CNET train $two --shard_optimizer --output_dir "$tmp/rs3" --resume_from_checkpoint latest \
    >"$tmp/rs3.log" 2>&1
check resume_one_process_on_sharded sh -c "grep -q '^step 3/6' '$tmp/rs3.log' &&
    ! grep -q '^step 2/6' '$tmp/rs3.log'"
check resume_one_process_on_sharded_equal mean_below "$tmp/sh/$W" "$tmp/rs3/$W" 1e-6
mkdir -p "$tmp/rs8"
cp -r "$tmp/sh8/checkpoint-2" "$tmp/rs8/"
$CNET train $common --train_batch_size 4 --use_8bit_adam --output_dir "$tmp/one8" >/dev/null 2>&1
$CNET train $common --train_batch_size 4 --use_8bit_adam --output_dir "$tmp/rs8" \
    --resume_from_checkpoint latest >/dev/null 2>&1
check resume_sharded_8bit_on_one_process mean_below "$tmp/one8/$W" "$tmp/rs8/$W" 1e-6

# A rank killed (-9) mid-run fails the whole run within a bounded time,
# mpirun naming the rank; the run then resumes from its latest checkpoint.
$CNET train $common --train_batch_size 2 --num_processes 2 --output_dir "$tmp/k" \
    --max_train_steps 100000 >"$tmp/k.log" 2>&1 &
launcher=$!
rank1=""
for _ in $(seq 600); do # up to 60 s for a checkpoint on a loaded machine
    if [ -d "$tmp/k/checkpoint-2" ] && [ -z "$rank1" ]; then
        for p in $(pgrep -P $launcher); do
            tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && rank1=$p
        done
        [ -n "$rank1" ] && break
    fi
    sleep 0.1
done
[ -n "$rank1" ] && kill -9 "$rank1"
ended=0
for _ in $(seq 300); do # the run must end within 30 s of the kill
    kill -0 $launcher 2>/dev/null || { ended=1; break; }
    sleep 0.1
done
if [ "$ended" != 1 ]; then # end what is left: the ranks, then mpirun
    for p in $(pgrep -P $launcher); do kill -9 "$p"; done
    kill -9 $launcher 2>/dev/null
fi
wait $launcher
status=$?
check kill_found_rank1 test -n "$rank1"
check kill_ends_run_in_time test "$ended" = 1
check kill_fails_the_run test "$status" -ne 0
check kill_names_the_rank grep -q "process rank 1 .* exited on signal 9" "$tmp/k.log"

# A rank that hangs (SIGSTOP: alive, silent) fails the run once a collective
# has waited CNET_DIST_TIMEOUT, the rank that waited naming the silent one.
CNET_DIST_TIMEOUT=5 $CNET train $common --train_batch_size 2 --num_processes 2 \
    --output_dir "$tmp/h" --max_train_steps 100000 >"$tmp/h.log" 2>&1 &
launcher=$!
stopped=""
for _ in $(seq 600); do
    if [ -d "$tmp/h/checkpoint-2" ]; then
        for p in $(pgrep -P $launcher); do
            tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && stopped=$p
        done
        [ -n "$stopped" ] && break
    fi
    sleep 0.1
done
[ -n "$stopped" ] && kill -STOP "$stopped"
ended=0
for _ in $(seq 600); do # the timeout (5 s) + the notes' grace (3 s) + mpirun's teardown
    kill -0 $launcher 2>/dev/null || { ended=1; break; }
    sleep 0.1
done
for p in $(pgrep -P $launcher); do kill -9 "$p"; done
kill -9 $launcher 2>/dev/null
wait $launcher
status=$?
check hang_found_rank1 test -n "$stopped"
check hang_ends_run_in_time test "$ended" = 1
check hang_fails_the_run test "$status" -ne 0
check hang_names_the_rank grep -q "rank 0: cnet train: .* waited 5 s .*: rank 1$" "$tmp/h.log"
check bad_timeout_refused sh -c "! CNET_DIST_TIMEOUT=soon $CNET train $common \
    --train_batch_size 2 --output_dir '$tmp/bt' >'$tmp/bt.log' 2>&1 &&
    grep -q 'CNET_DIST_TIMEOUT must be a positive number' '$tmp/bt.log'"

latest=$(ls -d "$tmp"/k/checkpoint-* 2>/dev/null | sed 's/.*checkpoint-//' | sort -n | tail -1)
$CNET train $common --train_batch_size 2 --num_processes 2 --output_dir "$tmp/k" \
    --max_train_steps $((${latest:-0} + 2)) --resume_from_checkpoint latest >"$tmp/k2.log" 2>&1
check kill_then_resume sh -c "test -s '$tmp/k/$W' &&
    grep -q '^step $((${latest:-0} + 1))/' '$tmp/k2.log' && ! grep -q '^step 1/' '$tmp/k2.log'"

summary train_mpi_test
