/* checkpoint.h — resumable training checkpoints.
 *
 * Layout under the run's output directory:
 *   <out>/checkpoints/step-00000123/manifest.json
 *   <out>/checkpoints/step-00000123/<group>.safetensors   (e.g. trainable, adam_m, adam_v, master)
 *   <out>/checkpoints/latest                              (text: "step-00000123\n")
 * The manifest is JSON: {"format": "onnxtune-checkpoint", "version": 1, "step": N,
 * "state": {...caller's: config, data cursor, RNG state, optimizer step...},
 * "files": {"trainable.safetensors": {"bytes": B, "crc32": C}, ...}}. CRC32 is zlib's.
 * A checkpoint is assembled in "step-XXXXXXXX.tmp.<pid>", every file fsynced, the
 * directory renamed into place and fsynced, then `latest` replaced atomically: a crash at
 * any point leaves the previous checkpoint intact and `latest` pointing at a complete one.
 * Opening verifies sizes and CRCs of every file before anything is read. */
#ifndef OT_CHECKPOINT_H
#define OT_CHECKPOINT_H

#include <cJSON.h>
#include <stdint.h>

#include "onnxtune/safetensors.h"

typedef struct ot_ckpt_group {
    const char *name;              /* file stem: "trainable" -> trainable.safetensors */
    const ot_named_tensor *tensors;
    int n;
} ot_ckpt_group;

/* Writes checkpoint `step` under <out>/checkpoints/. `state` is copied into the manifest
 * (not consumed). On success *dir (malloc'd, may be NULL) is the final directory. */
ot_status ot_checkpoint_save(const char *out, int64_t step, const cJSON *state, const ot_ckpt_group *groups,
                             int n_groups, char **dir);

typedef struct ot_checkpoint ot_checkpoint;

/* Opens a checkpoint: `path` is a step directory, a run's output directory or its
 * checkpoints/ folder (both follow `latest`). Verifies the manifest and every file's size
 * and CRC32; errors name the file. */
ot_status ot_checkpoint_open(const char *path, ot_checkpoint **out);
void ot_checkpoint_close(ot_checkpoint *c);
int64_t ot_checkpoint_step(const ot_checkpoint *c);
const char *ot_checkpoint_dir(const ot_checkpoint *c);
/* The caller's state object (owned by the checkpoint). */
const cJSON *ot_checkpoint_state(const ot_checkpoint *c);
/* A tensor of a group; NULL when absent. Valid until close. */
const ot_tensor *ot_checkpoint_tensor(const ot_checkpoint *c, const char *group, const char *name);
/* The group's safetensors handle (NULL if the group does not exist). */
const ot_safetensors *ot_checkpoint_group(const ot_checkpoint *c, const char *group);

#endif
