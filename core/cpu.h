/* cpu.h — what the host CPU can do, asked once. */
#ifndef OT_CPU_H
#define OT_CPU_H

/* 1 when the CPU computes bf16 dot products natively (AVX512-BF16, which every AMX CPU also
 * has): bf16 is then the default training precision. */
int ot_cpu_has_bf16(void);

#endif
