#include <gtest/gtest.h>
TEST(Placeholderlayers, Builds) { SUCCEED(); }
