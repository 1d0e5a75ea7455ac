/* graph.h — the graph IR: values, nodes and attributes with ONNX semantics.
 *
 * A graph owns arrays of values and nodes, referenced by index. A value is anything with a
 * name that flows along an edge: a graph input, an initializer (constant weights, `init`
 * set), or a node output. Shapes may hold symbolic dimensions (dims[i] == -1, dim_param[i]
 * naming it, or NULL when unknown); they are bound to numbers when a plan is made
 * (runtime/plan.h), never here. Nodes are kept in topological order by ot_graph_toposort.
 *
 * Strings and attribute arrays are owned by the graph. Initializer tensors usually point
 * into memory owned by `backing` (the parsed protobuf, mmapped external data); the graph
 * frees that memory through `backing_free` when destroyed. */
#ifndef OT_GRAPH_H
#define OT_GRAPH_H

#include <stdint.h>

#include "tensor.h"

typedef enum { /* ONNX AttributeProto.AttributeType numbers */
    OT_ATTR_UNDEFINED = 0,
    OT_ATTR_FLOAT = 1,
    OT_ATTR_INT = 2,
    OT_ATTR_STRING = 3,
    OT_ATTR_TENSOR = 4,
    OT_ATTR_GRAPH = 5,
    OT_ATTR_FLOATS = 6,
    OT_ATTR_INTS = 7,
    OT_ATTR_STRINGS = 8,
} ot_attr_type;

typedef struct ot_attr {
    char *name;
    ot_attr_type type;
    float f;
    int64_t i;
    char *s;           /* STRING, NUL-terminated (binary strings are not used by supported ops) */
    ot_tensor *t;      /* TENSOR, owned */
    int n;             /* element count of floats/ints/strings */
    float *floats;
    int64_t *ints;
    char **strings;
} ot_attr;

typedef struct ot_value {
    char *name;
    ot_dtype dtype;                  /* OT_UNDEFINED when not declared */
    int ndim;                        /* -1 when the rank is unknown */
    int64_t dims[OT_MAX_DIMS];       /* -1 for symbolic or unknown */
    char *dim_param[OT_MAX_DIMS];    /* symbol name for symbolic dims, else NULL */
    ot_tensor *init;                 /* initializer data (owned struct), NULL otherwise */
    int producer;                    /* producing node index, -1 for inputs/initializers */
    unsigned is_input : 1;           /* a graph input the user feeds */
    unsigned is_output : 1;          /* a graph output */
    unsigned is_param : 1;           /* trainable: `init` holds writable data that changes between
                                        runs, so the planner never folds through it */
} ot_value;

typedef struct ot_node {
    char *name;
    char *op_type;
    char *domain; /* "" for the default ONNX domain ("ai.onnx" is normalised to "") */
    int n_in, n_out;
    int *in;      /* value indices; -1 marks an omitted optional input/output */
    int *out;
    int n_attrs;
    ot_attr *attrs;
} ot_node;

typedef struct ot_opset {
    char *domain;
    int64_t version;
} ot_opset;

typedef struct ot_graph {
    char *name;
    ot_value *values;
    int n_values, cap_values;
    ot_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs, n_inputs;   /* user-fed inputs, in declaration order */
    int *outputs, n_outputs; /* graph outputs, in declaration order */
    ot_opset *opsets;
    int n_opsets;
    int64_t ir_version;
    struct ot_strmap *names; /* value name -> index */
    void *backing;           /* memory initializers point into */
    void (*backing_free)(void *);
    struct ot_graph_keep *keep; /* more such memory (weight files mapped later), freed last */
    int n_keep;
    ot_dtype weights_dtype;  /* the 16-bit float type a Hugging Face checkpoint stored its
                                weights in, which the importer widened to f32 (exports write
                                them back in it); OT_UNDEFINED when weights are as stored */
} ot_graph;

ot_status ot_graph_new(ot_graph **out);
void ot_graph_free(ot_graph *g);

/* Index of the value called `name`, creating an untyped one if absent. */
ot_status ot_graph_value(ot_graph *g, const char *name, int *idx);
/* Index of an existing value, or -1. */
int ot_graph_find(const ot_graph *g, const char *name);
/* Appends a node; copies the strings and arrays it is given. Returns its index in *idx. */
ot_status ot_graph_add_node(ot_graph *g, const char *op_type, const char *domain, const char *name,
                            const int *in, int n_in, const int *out, int n_out, int *idx);
ot_status ot_graph_add_opset(ot_graph *g, const char *domain, int64_t version);
/* Keeps `p` alive as long as the graph (initializers may point into it); `free_fn(p)` runs
 * when the graph is freed, after every tensor that could point into it. */
ot_status ot_graph_keep(ot_graph *g, void *p, void (*free_fn)(void *));
/* Opset version of `domain` imported by the graph, 0 if not imported. */
int64_t ot_graph_opset(const ot_graph *g, const char *domain);

/* Sorts nodes topologically and sets value producers. Fails naming a value that is used but
 * never produced, produced twice, or a cycle. */
ot_status ot_graph_toposort(ot_graph *g);

/* Attribute lookup on a node; NULL if absent. */
const ot_attr *ot_node_attr(const ot_node *n, const char *name);
/* Typed getters with defaults. They fail (naming node and attribute) on a type mismatch. */
ot_status ot_attr_int(const ot_node *n, const char *name, int64_t dflt, int64_t *v);
ot_status ot_attr_float(const ot_node *n, const char *name, float dflt, float *v);
ot_status ot_attr_string(const ot_node *n, const char *name, const char *dflt, const char **v);
/* Borrowed array; *count = -1 when the attribute is absent. */
ot_status ot_attr_ints(const ot_node *n, const char *name, const int64_t **v, int *count);
void ot_attr_free(ot_attr *a);

/* A printable name for a node in error messages: its name, or "<op_type> #index". */
const char *ot_node_label(const ot_graph *g, const ot_node *n);
/* "<op_type> node '<name>'" ("(unnamed)" when it has none), for messages raised where only
 * the node is at hand (an op's parse). Points into a thread-local buffer that the next call
 * on this thread overwrites. */
const char *ot_node_name(const ot_node *n);

#endif
