/* module_path.h — PyTorch module paths of weights, as PEFT names modules.
 *
 * A weight's module is read from its initializer name ("transformer.h.0.attn.c_attn.weight"
 * -> "transformer.h.0.attn.c_attn") or, when the ONNX exporter renamed it ("onnx::MatMul_123",
 * a transposed constant), from the scope of the node using it
 * ("/transformer/h.0/attn/c_attn/MatMul" -> "transformer.h.0.attn.c_attn"). Shared by the
 * LoRA rewrite (trainer/lora.c), which targets modules, and the weights overlay
 * (importer/weights_overlay.c), which matches a file's "<module>.weight" to such weights. */
#ifndef OT_IMPORTER_MODULE_PATH_H
#define OT_IMPORTER_MODULE_PATH_H

/* "<module>.weight" -> a malloc'd "<module>"; NULL when the name is not a module parameter
 * name (exporter-made names like "onnx::MatMul_123") or memory ran out. */
char *ot_module_from_weight(const char *name);

/* "/a/b.0/c/Op" -> a malloc'd "a.b.0.c": the node's scope without the op's own name; NULL
 * when the node name has no scope or memory ran out. */
char *ot_module_from_scope(const char *node_name);

#endif
