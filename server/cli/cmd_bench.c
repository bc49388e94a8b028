/* `cnet bench`: the command line of the performance measurements; the
 * timing itself is server/bench/'s, over option structs. The first argument
 * names the benchmark: `ops` times the products of the backend table
 * (server/bench/bench_ops.c), `--model DIR --task T` whole models
 * (server/bench/bench_model.c), `--task serve` the service's generate route
 * (server/bench/bench_serve.c). This file reads argv into those structs and
 * prints the usage texts; it times nothing. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "server/bench/bench_model.h"
#include "server/bench/bench_ops.h"
#include "server/bench/bench_serve.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"

static void usage_ops(FILE *f) {
    fprintf(f,
            "usage: cnet bench ops [--device D] [--mixed_precision P] [--iters N] [--json]\n"
            "  ops      time gemm, linear and conv2d (fwd, bwd-data, bwd-weight) at SD shapes\n"
            "  --device cpu (default), cuda or cuda:N (the CPU, with a note, without a GPU)\n"
            "  --mixed_precision no|fp16|bf16: the compute precision of the products on cuda\n"
            "  --iters  timed runs per case after one warm-up, median reported (default %d)\n"
            "  --json   one JSON object per line (first line: the machine)\n",
            BENCH_OPS_DEFAULT_ITERS);
}

static void usage_model(FILE *f) {
    fprintf(
        f,
        "usage: cnet bench --model DIR --task TASK [--device D] [--mixed_precision P] [--batch N] "
        "[--iters N] [--json]\n"
        "  --model   a diffusers pipeline folder (e.g. from cnet init-model)\n"
        "  --task    text_encoder: one 77-token prompt; vae_decode: one latent at the VAE's\n"
        "            sample size; cn_unet_step: ControlNet + UNet on a CFG batch of 2;\n"
        "            generate: one image, %d UniPC steps, CFG %g, at the UNet's sample size;\n"
        "            train_step / train_step_cached: one ControlNet optimizer step\n"
        "  --device  cpu (default), cuda or cuda:N (the CPU, with a note, without a GPU);\n"
        "            each timed run ends with a synchronize\n"
        "  --mixed_precision no|fp16|bf16: the compute precision of the products on cuda\n"
        "            (default no; a cpu computes bf16 with AVX512-BF16, float32 otherwise)\n"
        "  --batch   samples per training step, 1..%d (train tasks; default 1)\n"
        "  --use_8bit_adam, --gradient_checkpointing, --set_grads_to_none: train tasks, as in\n"
        "            cnet train; they add the activation, scratch and gradient memory\n"
        "  --iters   timed runs after one warm-up, median reported (default %d)\n"
        "  --json    one line {\"task\", \"device\", \"mixed_precision\", \"batch\",\n"
        "            \"median_ms\", \"peak_rss_mb\", \"peak_device_mb\" (null on the CPU)}\n",
        BENCH_GENERATE_STEPS, (double)BENCH_GENERATE_GUIDANCE, BENCH_MAX_BATCH,
        BENCH_MODEL_DEFAULT_ITERS);
}

static void usage_serve(FILE *f) {
    fprintf(f, "usage: cnet bench --task serve [--model DIR] [--requests N] "
               "[--steps N] [--json]\n"
               "  generate requests/s and p50/p99 latency of cnet serve with 1, 4 and "
               "16 clients\n");
}

static int cmd_bench_ops(int argc, char **argv) {
    bench_ops_opts o = {.device = "cpu", .iters = BENCH_OPS_DEFAULT_ITERS};
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (cli_flag(argv[i], "json", NULL)) {
            o.json = 1;
        } else if (cli_take(argc, argv, &i, "device", &o.device, &err)) {
            if (!o.device) {
                fprintf(stderr, "cnet bench ops: %s\n", err.msg);
                return 2;
            }
        } else if (cli_take(argc, argv, &i, "mixed_precision", &v, &err)) {
            if (!v || cnet_precision_parse(v, &o.precision, &err)) {
                fprintf(stderr, "cnet bench ops: %s\n", err.msg);
                return 2;
            }
        } else if (cli_is_help(argv[i])) {
            usage_ops(stdout);
            return 0;
        } else if (cli_flag(argv[i], "iters", &v)) {
            const char *flag = argv[i];
            if (!(v = cli_value(argc, argv, &i, v, &err)) ||
                cli_int(flag, v, 1, BENCH_OPS_MAX_ITERS, &o.iters, &err)) {
                fprintf(stderr, "cnet bench ops: %s\n", err.msg);
                return 2;
            }
        } else {
            fprintf(stderr, "cnet bench ops: unknown option '%s'\n", argv[i]);
            usage_ops(stderr);
            return 2;
        }
    }
    return bench_ops_run(&o);
}

static int cmd_bench_model(int argc, char **argv) {
    bench_model_opts o = {.device = "cpu", .iters = BENCH_MODEL_DEFAULT_ITERS, .batch = 0};
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int rc = 0;
        if (cli_flag(a, "json", NULL)) {
            o.json = 1;
        } else if (cli_flag(a, "use_8bit_adam", NULL)) {
            o.use_8bit_adam = 1;
        } else if (cli_flag(a, "gradient_checkpointing", NULL)) {
            o.gradient_checkpointing = 1;
        } else if (cli_flag(a, "set_grads_to_none", NULL)) {
            o.set_grads_to_none = 1;
        } else if (cli_flag(a, "model", &v)) {
            rc = !(o.model = cli_value(argc, argv, &i, v, &err));
        } else if (cli_flag(a, "task", &v)) {
            rc = !(o.task = cli_value(argc, argv, &i, v, &err));
        } else if (cli_flag(a, "device", &v)) {
            rc = !(o.device = cli_value(argc, argv, &i, v, &err));
        } else if (cli_flag(a, "mixed_precision", &v)) {
            rc = !(v = cli_value(argc, argv, &i, v, &err)) ||
                 cnet_precision_parse(v, &o.precision, &err);
        } else if (cli_flag(a, "iters", &v)) {
            rc = !(v = cli_value(argc, argv, &i, v, &err)) ||
                 cli_int(a, v, 1, BENCH_MODEL_MAX_ITERS, &o.iters, &err);
        } else if (cli_flag(a, "batch", &v)) {
            rc = !(v = cli_value(argc, argv, &i, v, &err)) ||
                 cli_int(a, v, 1, BENCH_MAX_BATCH, &o.batch, &err);
        } else {
            fprintf(stderr, "cnet bench: unknown option '%s'\n", a);
            usage_model(stderr);
            return 2;
        }
        if (rc) {
            fprintf(stderr, "cnet bench: %s\n", err.msg);
            return 2;
        }
    }
    return bench_model_run(&o);
}

static int cmd_bench_serve(int argc, char **argv) {
    bench_serve_opts o = {.requests = BENCH_SERVE_DEFAULT_REQUESTS,
                          .steps = BENCH_SERVE_DEFAULT_STEPS};
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int rc = 0;
        if (cli_flag(a, "json", NULL))
            o.json = 1;
        else if (cli_flag(a, "task", &v))
            rc = !(v = cli_value(argc, argv, &i, v, &err)) ||
                 (strcmp(v, "serve") && cnet_fail(&err, CNET_EINVAL, "--task %s is not serve", v));
        else if (cli_flag(a, "model", &v))
            rc = !(o.model = cli_value(argc, argv, &i, v, &err));
        else if (cli_flag(a, "requests", &v))
            rc = !(v = cli_value(argc, argv, &i, v, &err)) ||
                 cli_int(a, v, 1, BENCH_SERVE_MAX_REQUESTS, &o.requests, &err);
        else if (cli_flag(a, "steps", &v))
            rc = !(v = cli_value(argc, argv, &i, v, &err)) ||
                 cli_int(a, v, 1, API_GENERATE_STEPS_MAX, &o.steps, &err);
        else
            rc = cnet_fail(&err, CNET_EINVAL, "unknown option '%s'", a);
        if (rc) {
            fprintf(stderr, "cnet bench: %s\n", err.msg);
            usage_serve(stderr);
            return 2;
        }
    }
    return bench_serve_run(&o);
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "ops") == 0) return cmd_bench_ops(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage_ops(stdout);
        usage_model(stdout);
        usage_serve(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (cli_flag(argv[i], "task", &v) && (v || i + 1 < argc) &&
            strcmp(v ? v : argv[i + 1], "serve") == 0)
            return cmd_bench_serve(argc, argv);
    }
    if (argc >= 2 && strncmp(argv[1], "--", 2) == 0) return cmd_bench_model(argc, argv);
    usage_ops(stderr);
    usage_model(stderr);
    usage_serve(stderr);
    return 2;
}
