/* cli.h — shared by the subcommand files: each cmd_<name>.c defines one entry point. */
#ifndef OT_CLI_H
#define OT_CLI_H

int ot_cmd_inspect(int argc, char **argv);
int ot_cmd_infer(int argc, char **argv);
int ot_cmd_train(int argc, char **argv);
int ot_cmd_run(int argc, char **argv);
int ot_cmd_export(int argc, char **argv);
int ot_cmd_fetch(int argc, char **argv);
int ot_cmd_serve(int argc, char **argv);
int ot_cmd_estimate(int argc, char **argv);

/* Prints "onnxtune: <message>" to stderr and returns the exit code for a failure (1 for bad
 * input, 2 for usage). */
int ot_cli_fail(const char *fmt, ...);
/* Exit code 2 with a usage hint for `cmd`. */
int ot_cli_usage(const char *cmd, const char *fmt, ...);
/* Parses a positive int option value; returns 0 on success. */
int ot_cli_parse_int(const char *opt, const char *s, long min, long max, long *out);
/* Human-readable byte count ("12.3 MB") into buf. */
const char *ot_cli_bytes(char *buf, unsigned long buflen, double bytes);

#endif
