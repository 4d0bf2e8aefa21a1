// convkit/version.h — the library version.
#pragma once

#define CONVKIT_VERSION_MAJOR 0
#define CONVKIT_VERSION_MINOR 1
#define CONVKIT_VERSION_PATCH 0

namespace convkit {
inline constexpr const char* kVersion = "0.1.0";
}  // namespace convkit
