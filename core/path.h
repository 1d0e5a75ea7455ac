/* path.h — small path helpers shared by the modules that lay out files (checkpoints, the
 * job store, the runner). */
#ifndef OT_PATH_H
#define OT_PATH_H

/* "a/b", malloc'd; NULL when out of memory. */
char *ot_path_join(const char *a, const char *b);

#endif
