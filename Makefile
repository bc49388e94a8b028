# cnet — one Makefile for the whole project.
#   make            build build/cnet (and the CUDA objects when nvcc is found)
#   make test       build and run the whole suite (unit, golden, server, hub)
#   make run        build and start the service (see README)
#   make demo-model train the demo model from scratch into $(DEMO_OUT) (~1 hour on
#                   2 cores; server/demo/demo_model.sh, its sizes and steps)
#   make asan       the suite under AddressSanitizer + UBSan
#   make golden FIXTURES=<dir> [DEVICE=cuda]   check every golden of a fixture directory
#                   on a backend (cpu by default; cuda falls back to the CPU without a GPU)
#   make bench      op benchmarks (cnet bench ops), then the SDXL-small model tasks on the CPU
#   make bench-cuda the issue-8 model benchmarks on the SD 1.5 architecture on a GPU
#                   and SDXL at 1024x1024 (BENCH_DEVICE=cuda:N, SD15_DIR=<dir>,
#                   SDXL_DIR=<dir> made once by init-model)
#   make fixtures   copy new or changed reference fixtures from ../shared/fixtures into tests/fixtures
#   make test-docker  build docker/Dockerfile's CPU image and run it under podman
#   make test-cuda  the CUDA parity suite and the commands on cuda (skip themselves without a GPU)
#   make fuzz       the libFuzzer targets of tests/fuzz, FUZZ_SECONDS (60) each; make test
#                   runs them briefly (tests/fuzz/fuzz_test.sh)
# On Debian as root, missing packages are installed first (see `deps`).

CC       ?= gcc
BUILD    ?= build
FIXTURES ?= tests/fixtures
# make fixtures: the reference fixtures, when a copy sits beside the repository,
# are copied into tests/fixtures (new and changed files listed; commit them).
SHARED_FIXTURES ?= ../shared/fixtures
DEVICE   ?= cpu
OPT      ?= -O2
ARCH     ?= -march=native

OPENBLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
OPENBLAS_LIB := /usr/lib/x86_64-linux-gnu/openblas-openmp
# libpq's headers (Debian's libpq-dev): the PostgreSQL job store.
PG_INC       := /usr/include/postgresql

CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Wshadow -Werror -D_GNU_SOURCE -fopenmp $(ARCH) \
            -I. -I$(OPENBLAS_INC) -I$(PG_INC) -MMD -MP
LDLIBS   += -L$(OPENBLAS_LIB) -Wl,-rpath,$(OPENBLAS_LIB) -lopenblas -ljansson -lmicrohttpd -lcurl \
            -lcrypto -lsqlite3 -lpq -larchive -lsnappy -lzstd -lz -lpng -ljpeg -lm -lpthread -fopenmp

# Open MPI (Debian's libopenmpi-dev), found through pkg-config: data-parallel
# training's collectives (engine/dist/comm_mpi.c, CNET_HAVE_MPI). Without it
# cnet builds and trains in one process, and refuses --num_processes > 1.
# Expanded when a recipe runs (=, not :=), after `deps` may have installed it.
MPI_LIBS   = $(shell pkg-config --libs ompi-c 2>/dev/null)
MPI_CFLAGS = $(if $(MPI_LIBS),-DCNET_HAVE_MPI $(patsubst -I%,-isystem %,$(shell \
               pkg-config --cflags ompi-c 2>/dev/null)))
CFLAGS   += $(MPI_CFLAGS)
LDLIBS   += $(MPI_LIBS)

# Debian packages the build and tests need (checked idempotently by `deps`).
# (libjpeg-dev: the same name on Debian and on the Ubuntu of NVIDIA's images.)
DEB_PKGS := gcc make pkg-config libopenblas-openmp-dev libjansson-dev libpng-dev libjpeg-dev \
            libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libpq-dev libarchive-dev \
            python3 python3-protobuf protobuf-compiler libsnappy-dev libzstd-dev zlib1g-dev
# Only the tests need these (the image's build leaves them out): the container
# tests, and a PostgreSQL cluster for the shared job store's (store_pg_test.sh).
# The multi-process training test (tests/integration/train_mpi_test.sh) runs
# its ranks under Open MPI's mpirun.
DEB_PKGS_TEST := podman podman-compose debootstrap postgresql libopenmpi-dev openmpi-bin

REF_SRC  := $(wildcard kernels/cpu/ref_*.c)
LIB_SRC  := $(wildcard engine/*/*.c) kernels/backend_open.c $(filter-out $(REF_SRC),$(wildcard kernels/cpu/*.c)) \
            $(wildcard api/*.c) $(filter-out server/cli/main.c,$(wildcard server/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
# Test programs live in tests/<kind>/ and build flat into $(BUILD)/tests/.
TEST_SRC := $(wildcard tests/*/test_*.c)
TEST_BIN := $(addprefix $(BUILD)/tests/,$(basename $(notdir $(TEST_SRC))))
TOOL_SRC := $(wildcard tests/tools/tool_*.c)
TOOL_BIN := $(addprefix $(BUILD)/tests/,$(basename $(notdir $(TOOL_SRC))))
# The double-precision references and shared test helpers link into tests only.
TEST_LIB := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/lib/lib_*.c) $(REF_SRC))

NVCC     := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_SRC := $(wildcard kernels/cuda/*.cu)
# With nvcc the CUDA backend joins the library (CNET_HAVE_CUDA); without it
# the binary is CPU-only. CUDA_GENCODE: sm_90 code plus compute_90 PTX for
# newer GPUs (docker/Dockerfile adds sm_80). The CUDA libraries are linked
# --as-needed: programs that never touch the CUDA backend do not load them.
# nvcc on PATH may be a wrapper script outside the toolkit (/usr/local/bin/nvcc
# exec'ing /usr/local/cuda-13.0/bin/nvcc); its dry run names the real bin/
# folder (_HERE_), whose parent holds include/ and lib64/. A toolkit without
# the runtime libraries builds CPU-only rather than failing to link.
ifneq ($(NVCC),)
CUDA_HOME := $(patsubst %/bin,%,$(shell $(NVCC) --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | \
               sed -n 's/^#\$$ _HERE_=//p' | head -n 1))
ifeq ($(wildcard $(CUDA_HOME)/lib64/libcudart.so),)
$(info CUDA runtime not found under '$(CUDA_HOME)/lib64': building the CPU backend only)
NVCC :=
endif
endif
CUDA_GENCODE ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
ifneq ($(NVCC),)
CUDA_OBJ  := $(CUDA_SRC:%.cu=$(BUILD)/%.o)
CFLAGS    += -DCNET_HAVE_CUDA -isystem $(CUDA_HOME)/include
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,--push-state,--as-needed \
             -lcudart -lcublas -lcublasLt -lcudnn -lstdc++ -Wl,--pop-state
NVCCFLAGS := -std=c++17 -O3 -g -I. $(CUDA_GENCODE) -Werror all-warnings \
             -Xcompiler -Wall,-Wextra,-Wshadow,-Werror -DCNET_HAVE_CUDA -MMD -MP
endif

.PHONY: all deps test test-docker test-cuda run demo-model asan golden fixtures bench bench-cuda clean \
        format fuzz fuzz-build fuzz-targets
all: deps $(BUILD)/cnet

deps:
	@missing=""; for p in $(DEB_PKGS) $(DEB_PKGS_TEST); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "cnet: installing missing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	  else \
	    echo "cnet: missing Debian packages; run as root: apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu | deps
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MF $(@:.o=.d) -c $< -o $@

# The Winograd kernel's multiply-adds are written as a * b + c on vectors;
# ISO C mode does not contract them into FMAs unless asked.
$(BUILD)/kernels/cpu/conv_winograd.o: CFLAGS += -ffp-contract=fast

# api/api_openapi.c embeds api/openapi.yaml with .incbin, which -MMD cannot see.
$(BUILD)/api/api_openapi.o: api/openapi.yaml
# server/http/web_assets.c embeds the dashboard the same way.
$(BUILD)/server/http/web_assets.o: $(wildcard web/*)

$(BUILD)/libcnet.a: $(LIB_OBJ) $(CUDA_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cnet: $(BUILD)/server/cli/main.o $(BUILD)/libcnet.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# $(BUILD)/tests/<name> from tests/<kind>/<name>.c.
define test_program
$(BUILD)/tests/$(basename $(notdir $(1))): $(BUILD)/$(1:.c=.o) $(TEST_LIB) $(BUILD)/libcnet.a
	$$(CC) $$(CFLAGS) $$^ -o $$@ $$(LDLIBS)
endef
$(foreach src,$(TEST_SRC) $(TOOL_SRC),$(eval $(call test_program,$(src))))

test: all $(TEST_BIN) $(TOOL_BIN) fuzz-build
	@BUILD=$(BUILD) FIXTURES=$(FIXTURES) sh tests/run.sh

# make test-docker: the container files checked, then the image built and run
# under podman (both also part of `make test`).
test-docker: all
	@BUILD=$(BUILD) sh tests/integration/docker_test.sh
	@BUILD=$(BUILD) sh tests/integration/docker_run_test.sh

test-cuda: all $(BUILD)/tests/test_cuda_parity $(BUILD)/tests/tool_imgdiff
	@$(BUILD)/tests/test_cuda_parity --fixtures $(FIXTURES)
	@BUILD=$(BUILD) sh tests/cuda/cuda_cli_test.sh

asan:
	$(MAKE) test BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"

# make fuzz: one libFuzzer target per parser (tests/fuzz/fuzz_<target>.c), built
# from the same sources by clang with ASan + UBSan into $(FUZZ_BUILD) (its own
# objects, no CUDA), each run FUZZ_SECONDS over its committed corpus
# tests/fuzz/corpus/<target>; a crash fails with the reproducer's path.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_PKGS    := clang libclang-rt-dev libomp-dev
# -Wno-pass-failed: clang cannot vectorize the kernels' `omp simd` loops once
# they are instrumented, and says so
FUZZ_OPT     := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined -Wno-pass-failed
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_LIB     := $(patsubst %.c,$(BUILD)/%.o,tests/fuzz/lib_fuzz.c tests/lib/lib_fs.c)
fuzz-build:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(FUZZ_PKGS)"
	@$(MAKE) --no-print-directory fuzz-targets BUILD=$(FUZZ_BUILD) CC=clang NVCC= OPT="$(FUZZ_OPT)"
# with BUILD=$(FUZZ_BUILD) and clang (fuzz-build sets both)
fuzz-targets: $(addprefix $(BUILD)/fuzz/,$(basename $(notdir $(FUZZ_SRC))))
.PRECIOUS: $(BUILD)/tests/fuzz/%.o
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(FUZZ_LIB) $(BUILD)/libcnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $^ -o $@ $(LDLIBS)
fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/fuzz_test.sh

golden: all
	$(BUILD)/cnet golden --fixtures $(FIXTURES) --device $(DEVICE)

fixtures:
	@sh tests/tools/fixtures_sync.sh $(SHARED_FIXTURES) tests/fixtures

# make run: the demo model (server/demo/model, made by `make demo-model`), a
# dataset for its demo job and a token under $(RUN_DATA) (each made once; a
# data/models/demo that is not the shipped model, an older make run's, is
# kept as demo.old-<time>), two ready-to-paste curl commands, then the service in
# the foreground. The dataset is the demo model's own first 1000 samples
# (make-fill's seed 0 at 64x64); tests/integration/test_demo_model.c runs
# the same job on the same data.
RUN_DATA ?= ./data
RUN_PORT ?= 8080
run: all
	@mkdir -p $(RUN_DATA)/models $(RUN_DATA)/local && chmod 700 $(RUN_DATA)
	@d=$(RUN_DATA)/models/demo; cmp -s server/demo/model/README.md $$d/README.md || { \
	  if [ -e $$d ]; then o=$$d.old-$$(date +%s); mv $$d $$o && echo "cnet: kept the old $$d as $$o"; fi; \
	  rm -rf $$d.new && cp -r server/demo/model $$d.new && mv $$d.new $$d; }
	@[ -f $(RUN_DATA)/local/demo-fill/metadata.jsonl ] || \
	  $(BUILD)/cnet dataset make-fill --n 1000 --size 64 --seed 0 --out $(RUN_DATA)/local/demo-fill
	@[ -s $(RUN_DATA)/token ] || (umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > $(RUN_DATA)/token)
	@tok=$$(cat $(RUN_DATA)/token); fill=$$(cd $(RUN_DATA)/local/demo-fill && pwd); \
	url=http://127.0.0.1:$(RUN_PORT); \
	echo "cnet: token $$tok (in $(RUN_DATA)/token); dashboard $$url/"; \
	echo "cnet: generate an image from the bundled control image:"; \
	echo "  curl -H 'Authorization: Bearer $$tok' -F model=demo -F prompt='red circle with navy background' \\"; \
	echo "       -F steps=20 -F guidance=2 -F seed=1 -F image=@docker/demo-control.png -o out.png $$url/v1/generate"; \
	echo "cnet: train a ControlNet on the demo model and dataset (then follow it at $$url/#/jobs):"; \
	echo "  sed 's|\"DATASET\"|\"$$fill\"|' server/demo/demo_job.json | \\"; \
	echo "  curl -H 'Authorization: Bearer $$tok' -H 'Content-Type: application/json' -d @- $$url/v1/jobs"
	$(BUILD)/cnet serve --port $(RUN_PORT) --data $(RUN_DATA) --data-root $(RUN_DATA)/local \
	  --token-file $(RUN_DATA)/token

# make demo-model: the demo model made by cnet from one seed (dataset, VAE,
# UNet, ControlNet; each stage timed) into $(DEMO_OUT), its work files beside
# it; server/demo/demo_model.sh says what each stage runs.
DEMO_OUT ?= $(BUILD)/demo-model
demo-model: all
	CNET=$(BUILD)/cnet DEMO_OUT=$(DEMO_OUT) sh server/demo/demo_model.sh

# make bench: the op cases, then the SDXL-small model tasks on the CPU
# (SDXL's layout at reduced width, `init-model --preset sdxl-small`, made
# once under $(SDXL_SMALL_DIR), ~1.4 GB): both text encoders, VAE decode to
# 256x256, ControlNet + UNet on a CFG batch of 2 at 32x32 latents.
SDXL_SMALL_DIR   ?= /tmp/small-sdxl
SDXL_SMALL_TASKS := text_encoder vae_decode cn_unet_step
SDXL_SMALL_ITERS ?= 3
bench: all
	$(BUILD)/cnet bench ops
	@[ -f $(SDXL_SMALL_DIR)/text_encoder_2/model.safetensors ] || \
	  $(BUILD)/cnet init-model --out $(SDXL_SMALL_DIR) --preset sdxl-small
	@for t in $(SDXL_SMALL_TASKS); do \
	  $(BUILD)/cnet bench --model $(SDXL_SMALL_DIR) --task $$t --iters $(SDXL_SMALL_ITERS) || exit 1; \
	done

# make bench-cuda: SD 1.5's architecture with random f16 weights (made once
# under $(SD15_DIR), ~2.8 GB), then the op cases and every model task of issue 8 on
# $(BENCH_DEVICE), one JSON line each (median ms, peak RSS, peak device
# memory); then SDXL base 1.0's architecture at 1024x1024 (f16 weights made
# once under $(SDXL_DIR), ~9.4 GB; 128x128 latents): both text encoders,
# VAE decode, the ControlNet + UNet CFG step and the batch-1 training step
# with the memory levers, in each precision. An SDXL task that fails is
# reported and the others still run; the target fails at the end. The text encoder runs first; when it did not run on a GPU (none
# visible: cnet fell back to the CPU) the rest is skipped, since a CPU run
# of this set takes hours.
SD15_DIR     ?= /tmp/sd15
BENCH_DEVICE ?= cuda
BENCH_ITERS  ?= 5
BENCH_TASKS  := "vae_decode" "cn_unet_step" "train_step --batch 1" "train_step --batch 8" "generate" \
                "train_step --batch 1 --gradient_checkpointing --use_8bit_adam --set_grads_to_none"
BENCH_PRECISIONS ?= no bf16 fp16
SDXL_DIR         ?= /tmp/sdxl
SDXL_BENCH_TASKS := "text_encoder" "vae_decode" "cn_unet_step" \
                    "train_step --batch 1 --gradient_checkpointing --use_8bit_adam --set_grads_to_none"
bench-cuda: all
	@[ -f $(SD15_DIR)/unet/diffusion_pytorch_model.safetensors ] || \
	  $(BUILD)/cnet init-model --out $(SD15_DIR) --preset sd15 --dtype f16
	@first=$$($(BUILD)/cnet bench --model $(SD15_DIR) --task text_encoder \
	    --device $(BENCH_DEVICE) --iters $(BENCH_ITERS) --json) || exit 1; echo "$$first"; \
	case "$$first" in *'"device":"cuda"'*) ;; \
	  *) echo "make bench-cuda: no GPU ran the text encoder; skipping the rest"; exit 0 ;; esac; \
	$(BUILD)/cnet bench ops --device $(BENCH_DEVICE) --iters $(BENCH_ITERS) --json || exit 1; \
	for p in $(BENCH_PRECISIONS); do for t in $(BENCH_TASKS); do \
	  echo "--mixed_precision $$p --task $$t"; \
	  $(BUILD)/cnet bench --model $(SD15_DIR) --device $(BENCH_DEVICE) --iters $(BENCH_ITERS) \
	    --mixed_precision $$p --json --task $$t || exit 1; \
	done; done
	@[ -f $(SDXL_DIR)/text_encoder_2/model.safetensors ] || \
	  $(BUILD)/cnet init-model --out $(SDXL_DIR) --preset sdxl --dtype f16
	@fail=0; for p in $(BENCH_PRECISIONS); do for t in $(SDXL_BENCH_TASKS); do \
	  echo "sdxl --mixed_precision $$p --task $$t"; \
	  $(BUILD)/cnet bench --model $(SDXL_DIR) --device $(BENCH_DEVICE) --iters $(BENCH_ITERS) \
	    --mixed_precision $$p --json --task $$t || fail=1; \
	done; done; exit $$fail

format:
	clang-format -i $(wildcard engine/*/*.[ch] kernels/*.c kernels/*/*.[ch] kernels/cuda/*.cu \
	  server/*/*.[ch] api/*.[ch] tests/*/*.[ch])

clean:
	rm -rf build build-asan $(FUZZ_BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
