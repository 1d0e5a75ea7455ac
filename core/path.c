/* path.c — see path.h. */
#include "path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ot_path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}
