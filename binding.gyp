{
  "variables": {
    # "portable" (scripts/build-prebuilds.mjs passes --clawjail-link=portable): clawjail-init is
    # linked fully statically, so the prebuilt helper needs nothing from the host's glibc, and both
    # are stripped. The addon keeps the host's libstdc++ (node itself needs one): linking it in
    # would raise the glibc it needs (arc4random, _dl_find_object) above what it needs without.
    "clawjail_link%": "default"
  },
  "targets": [
    {
      "target_name": "clawjail",
      "sources": ["native/addon/addon.cc", "native/addon/relay.cc", "native/common/fdpass.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "conditions": [["clawjail_link=='portable'", { "ldflags": ["-s"] }]]
    },
    {
      "target_name": "clawjail-init",
      "type": "executable",
      "sources": [
        "native/init/main.cc",
        "native/init/inplace.cc",
        "native/init/plan.cc",
        "native/init/errors.cc",
        "native/init/channel.cc",
        "native/init/userns.cc",
        "native/init/mounts.cc",
        "native/init/net.cc",
        "native/init/landlock.cc",
        "native/init/seccomp.cc",
        "native/init/process.cc",
        "native/common/json.cc",
        "native/common/fdpass.cc"
      ],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"],
      "ldflags": ["-static-libstdc++", "-static-libgcc"],
      "conditions": [["clawjail_link=='portable'", { "ldflags": ["-static", "-s"] }]]
    }
  ]
}
