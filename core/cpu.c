/* cpu.c — see cpu.h. */
#include "core/cpu.h"

int ot_cpu_has_bf16(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
#else
    return 0;
#endif
}
