// Non-x86 builds: only the scalar table exists; the wide-ISA getters are never selected (cpuid says no).
#include "kernels.h"

namespace kestrel {
const IsaKernels* isa_avx2() { return isa_scalar(); }
const IsaKernels* isa_avx512() { return isa_scalar(); }
const IsaKernels* isa_avx512vnni() { return isa_scalar(); }
}  // namespace kestrel
