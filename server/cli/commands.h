/* The subcommands of the cnet binary. Each takes (argc, argv) with argv[0]
 * the command name and returns the process exit status (0 ok, 1 failure,
 * 2 usage error). */
#ifndef CNET_COMMANDS_H
#define CNET_COMMANDS_H

typedef struct cnet_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cnet_command;

int cmd_help(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_train_unet(int argc, char **argv);
int cmd_train_vae(int argc, char **argv);
int cmd_bench(int argc, char **argv);    /* server/cli/cmd_bench.c */
int cmd_forward(int argc, char **argv);  /* server/cli/cmd_forward.c */
int cmd_generate(int argc, char **argv); /* server/cli/cmd_generate.c */
int cmd_golden(int argc, char **argv);
int cmd_init_model(int argc, char **argv); /* server/cli/cmd_init_model.c */
int cmd_push(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_dataset(int argc, char **argv); /* server/cli/cmd_dataset.c */
int cmd_convert(int argc, char **argv); /* server/cli/cmd_convert.c */

#endif
