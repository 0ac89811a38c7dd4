# The addon: baseline C++ plus one static library per instruction set, each compiled with only its own -m
# flags (never a host-tuned -march), so one build runs on any x86-64 CPU and picks its kernels at run time (cpuid).
{
  "variables": {
    "kestrel_common_cflags": ["-O3", "-fPIC", "-std=c++17", "-fno-math-errno", "-Wno-uninitialized", "-Wno-maybe-uninitialized"]
  },
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++20"],
    "cflags!": ["-fno-exceptions"],
    "include_dirs": ["src"]
  },
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "kestrel_isa_avx2",
          "type": "static_library",
          "sources": ["src/isa_avx2.cc"],
          "cflags_cc": ["<@(kestrel_common_cflags)", "-mavx2", "-mfma"]
        },
        {
          "target_name": "kestrel_isa_avx512",
          "type": "static_library",
          "sources": ["src/isa_avx512.cc"],
          "cflags_cc": ["<@(kestrel_common_cflags)", "-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"]
        },
        {
          "target_name": "kestrel_isa_avx512vnni",
          "type": "static_library",
          "sources": ["src/isa_avx512vnni.cc"],
          "cflags_cc": ["<@(kestrel_common_cflags)", "-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni"]
        },
        {
          "target_name": "kestrel_native",
          "sources": ["src/addon.cc", "src/mmap.cc", "src/ops.cc", "src/threadpool.cc", "src/isa_scalar.cc"],
          "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except", "kestrel_isa_avx2", "kestrel_isa_avx512", "kestrel_isa_avx512vnni"],
          "cflags_cc": ["<@(kestrel_common_cflags)"]
        }
      ]
    }, {
      "targets": [
        {
          "target_name": "kestrel_native",
          "sources": ["src/addon.cc", "src/mmap.cc", "src/ops.cc", "src/threadpool.cc", "src/isa_scalar.cc", "src/isa_none.cc"],
          "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
          "cflags_cc": ["<@(kestrel_common_cflags)"]
        }
      ]
    }]
  ]
}
