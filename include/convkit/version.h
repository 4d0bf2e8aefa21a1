// convkit/version.h — the library version.
#pragma once

#define CONVKIT_VERSION_MAJOR 0
#define CONVKIT_VERSION_MINOR 2
#define CONVKIT_VERSION_PATCH 0

namespace convkit {
inline constexpr const char* kVersion = "0.2.0";
}  // namespace convkit
