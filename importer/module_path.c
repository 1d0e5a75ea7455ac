/* module_path.c — module paths from weight and node names; see module_path.h. Pure string
 * functions: no graph, no state. */
#include <stdlib.h>
#include <string.h>

#include "importer/module_path.h"

char *ot_module_from_weight(const char *name) {
    size_t n = strlen(name);
    if (strncmp(name, "onnx::", 6) == 0 || n <= 7 || strcmp(name + n - 7, ".weight") != 0) return NULL;
    return strndup(name, n - 7);
}

char *ot_module_from_scope(const char *node_name) {
    if (node_name[0] != '/') return NULL;
    const char *last = strrchr(node_name, '/');
    if (last == node_name) return NULL;
    char *m = strndup(node_name + 1, (size_t)(last - node_name - 1));
    if (!m) return NULL;
    for (char *p = m; *p; p++)
        if (*p == '/') *p = '.';
    return m;
}
