// What Swift cannot call directly for LatheRuntime's thread pool: the futex system call
// (syscall is variadic), the CPU's spin-wait hint, and the CPU affinity mask's macros.
#ifndef CLATHE_THREADS_H
#define CLATHE_THREADS_H

#include <stdint.h>

/// Blocks while *word == expected (checked atomically with going to sleep), until
/// lathe_wake on the same word, a signal, or `timeout_ns` (<= 0: no limit) passes.
/// Returns at once if *word != expected. Spurious returns happen: the caller checks again.
void lathe_wait_on(uint32_t *word, uint32_t expected, int64_t timeout_ns);

/// Wakes up to `count` threads blocked in lathe_wait_on on `word`.
void lathe_wake(uint32_t *word, int32_t count);

/// A spin-wait hint (PAUSE on x86, YIELD on Arm): lets the other hyperthread run and keeps a
/// spinning loop from flooding the memory pipeline.
void lathe_cpu_relax(void);

/// Gives the core to another runnable thread, if there is one.
void lathe_yield(void);

/// The CPUs this process may run on (its main thread's affinity mask), at least 1.
int32_t lathe_allowed_cpus(void);

/// How many threads the whole machine has runnable (running or waiting for a CPU) at this
/// instant, this one included: Linux's /proc/loadavg. -1 where that cannot be read.
int32_t lathe_runnable_threads(void);

/// The CPUs the machine has online, at least 1.
int32_t lathe_online_cpus(void);

/// Monotonic clock in nanoseconds.
int64_t lathe_now_ns(void);

#endif
