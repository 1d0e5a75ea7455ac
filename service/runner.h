/* runner.h — runs queued fine-tuning jobs as child processes.
 *
 * ot_runner_start spawns `workers` threads. Each claims the oldest queued job (FIFO, an
 * atomic store claim), writes data_dir/jobs/<id>/job.json (job_config.h), and fork/execs
 * `<onnxtune> run --config job.json` (plus `--resume <run dir>` when an earlier attempt
 * left a checkpoint) in its own process group, stdout+stderr appended to
 * data_dir/jobs/<id>/train.log. While the child runs the worker tails run/log.jsonl into
 * events (one per step), turns new run/checkpoints/step-N directories into checkpoint
 * rows and updates trained_tokens. Exit 0 -> succeeded with result_files and
 * fine_tuned_model "ft:<model basename>:<suffix or job id>"; any other exit or a signal ->
 * failed with the last 20 lines of train.log in error.message. A child's crash never
 * touches the server; every child is reaped by its own worker (waitpid on its pid only).
 *
 * Cancel: ot_runner_cancel moves an active job to cancelled (store CAS) and, when it is
 * running here, sends SIGTERM to its process group, then SIGKILL after the grace period
 * (10 s); its checkpoints are kept. Stop (server shutdown): workers stop claiming, running
 * children are terminated the same way and their jobs are LEFT `running` in the store, so
 * ot_store_recover_after_restart on the next start requeues them and they resume from the
 * last checkpoint — the same path a kill -9 of the server takes.
 *
 * The embedding process must not set SIGCHLD to SIG_IGN (children could not be reaped). */
#ifndef OT_SERVICE_RUNNER_H
#define OT_SERVICE_RUNNER_H

#include <stddef.h>

#include "core/status.h"
#include "service/store.h"

typedef struct ot_runner ot_runner;

/* Starts `workers` (1..64) worker threads. `onnxtune_bin` is the path of the onnxtune
 * executable to run (e.g. /proc/self/exe resolved by the caller). The store must outlive
 * the runner. Strings are copied. */
ot_status ot_runner_start(ot_store *st, const char *data_dir, const char *onnxtune_bin, int workers,
                          ot_runner **out);

/* Wakes idle workers: call after a job was created (workers also poll every 500 ms). */
void ot_runner_notify(ot_runner *r);

/* Cancels job `job_id` if it is still active (validating_files, queued or running):
 * *changed = 1 when this call cancelled it, 0 when it had already finished (or does not
 * exist). Returns once the status change is committed; the child is signalled at once and
 * reaped by its worker in the background. */
ot_status ot_runner_cancel(ot_runner *r, const char *job_id, int *changed);

/* Number of children running now (for /metrics). */
int ot_runner_active(ot_runner *r);

/* Artifacts of a succeeded job live under data_dir/jobs/<id>/run/export/; their names
 * (what result_files lists) are: "model.onnx", "model.safetensors",
 * "adapter/adapter_model.safetensors", "adapter/adapter_config.json". Writes the path of
 * artifact `name` of job `job_id` into buf; OT_E_INVALID for a malformed job id or a name
 * not in that list (so no request can name a path outside the data dir). Does not check
 * that the file exists. */
ot_status ot_runner_artifact_path(const char *data_dir, const char *job_id, const char *name, char *buf, size_t n);

/* Test hook: the SIGTERM -> SIGKILL grace period in milliseconds (default 10000). */
void ot_runner_set_kill_grace_ms(ot_runner *r, int ms);

/* Stops claiming, terminates running children (SIGTERM, SIGKILL after the grace period),
 * joins the workers and frees the runner. Interrupted jobs stay `running` in the store
 * (see above). NULL-safe. */
void ot_runner_stop(ot_runner *r);

#endif
