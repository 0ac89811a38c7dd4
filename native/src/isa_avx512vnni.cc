// AVX-512 VNNI kernels: the AVX-512 file compiled again with KESTREL_AVX512_VNNI (see binding.gyp flags).
#define KESTREL_AVX512_VNNI 1
#include "isa_avx512.cc"
