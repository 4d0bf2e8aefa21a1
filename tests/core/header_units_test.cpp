// Every public header compiles alone in its own translation unit (the units are generated
// by tests/CMakeLists.txt, one per header); this test checks that none was skipped. The
// MPI header (distributed/) needs MPI's include path: tests/distributed includes it first
// in its own unit. And the
// version macros equal the CMake project version.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#ifndef CONVKIT_NO_HEADER_UNITS  // the sanitizer build leaves the header units out
#include "header_units.h"

TEST(Headers, EachPublicHeaderHasItsOwnTranslationUnit) {
  std::set<std::string> compiled;
  for (const char* name : convkit_header_units()) compiled.insert(name);
  std::set<std::string> on_disk;
  const std::filesystem::path root(CONVKIT_INCLUDE_DIR);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root / "convkit"))
    if (entry.path().extension() == ".h" && entry.path().parent_path().filename() != "distributed")
      on_disk.insert(std::filesystem::relative(entry.path(), root).generic_string());
  EXPECT_GE(on_disk.size(), 20u);
  EXPECT_EQ(compiled, on_disk);
}
#endif

#include <convkit/version.h>

TEST(Version, MacrosAndStringMatchTheCMakeProjectVersion) {
  const std::string macros = std::to_string(CONVKIT_VERSION_MAJOR) + "." + std::to_string(CONVKIT_VERSION_MINOR) + "." +
                             std::to_string(CONVKIT_VERSION_PATCH);
  EXPECT_EQ(macros, CONVKIT_CMAKE_VERSION);
  EXPECT_EQ(std::string(convkit::kVersion), CONVKIT_CMAKE_VERSION);
}
