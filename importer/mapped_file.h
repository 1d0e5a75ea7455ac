/* mapped_file.h — read-only memory maps of whole files, and path confinement.
 *
 * Weights are used in place from the map (MAP_PRIVATE, PROT_READ): the kernel pages them in
 * on demand and several processes share the page cache. A map lives until ot_mapped_close. */
#ifndef OT_MAPPED_FILE_H
#define OT_MAPPED_FILE_H

#include <stddef.h>

#include "core/status.h"

typedef struct ot_mapped_file {
    char *path;
    void *data; /* NULL for an empty file */
    size_t size;
} ot_mapped_file;

/* Maps `path`. Fails naming the path (missing, unreadable, a directory). */
ot_status ot_mapped_open(ot_mapped_file *f, const char *path);
void ot_mapped_close(ot_mapped_file *f);

/* Resolves `rel` (a location read from a model file) against directory `dir`, refusing
 * absolute paths, and anything whose real path leaves the real path of `dir` (via "..",
 * or a symlink). On success *out is a malloc'd real path. `what` names the referring input
 * for the message. */
ot_status ot_confined_path(const char *dir, const char *rel, const char *what, char **out);

/* The directory part of a path ("." when none), malloc'd. */
char *ot_dirname_dup(const char *path);

#endif
