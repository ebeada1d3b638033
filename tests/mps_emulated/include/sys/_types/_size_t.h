#pragma once
// A macOS SDK header that ATen/mps/MPSGuardImpl.h includes unconditionally; size_t is the C one.
#include <stddef.h>
