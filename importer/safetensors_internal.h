/* safetensors_internal.h — what importer/safetensors.c shares with the safetensors writer
 * (exporter/safetensors_writer.c), so the two agree on what a valid file is. Internal: not
 * part of include/onnxtune. */
#ifndef OT_SAFETENSORS_INTERNAL_H
#define OT_SAFETENSORS_INTERNAL_H

#include <stddef.h>

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF, no
 * sequence cut off by the end of the buffer. Returns the offset of the first bad byte, or
 * `n` when all n bytes are valid. The reader checks the header with it, the writer every
 * name and metadata string. */
size_t ot_utf8_bad_offset(const void *s, size_t n);

#endif
