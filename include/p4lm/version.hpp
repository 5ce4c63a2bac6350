#pragma once
// p4lm's version, in its own header so build systems can read it without the library.

#define P4LM_VERSION_MAJOR 0
#define P4LM_VERSION_MINOR 1
#define P4LM_VERSION_PATCH 0
#define P4LM_VERSION_STRING "0.1.0"

namespace p4lm {
inline constexpr int version_major = P4LM_VERSION_MAJOR;
inline constexpr int version_minor = P4LM_VERSION_MINOR;
inline constexpr int version_patch = P4LM_VERSION_PATCH;
inline constexpr const char* version_string = P4LM_VERSION_STRING;
}  // namespace p4lm
