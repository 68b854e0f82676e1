// Whether this translation unit is built with a sanitizer: GCC says so with
// __SANITIZE_ADDRESS__ and __SANITIZE_THREAD__, clang (14 at least) only
// through __has_feature. Code that must behave differently under one (the
// system backend takes the sanitizer's malloc; ThreadSanitizer is told about
// uninstrumented allocators' locks) tests KMBENCH_ASAN and KMBENCH_TSAN.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define KMBENCH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KMBENCH_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define KMBENCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KMBENCH_TSAN 1
#endif
#endif
