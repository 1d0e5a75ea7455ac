/* strmap.h — string -> int hash map (open addressing, keys copied and owned). */
#ifndef OT_STRMAP_H
#define OT_STRMAP_H

#include "status.h"

typedef struct ot_strmap ot_strmap;

ot_strmap *ot_strmap_new(void);
void ot_strmap_free(ot_strmap *m);
/* Inserts or overwrites. */
ot_status ot_strmap_put(ot_strmap *m, const char *key, int value);
/* Returns 1 and sets *value when found, else 0. */
int ot_strmap_get(const ot_strmap *m, const char *key, int *value);

#endif
