#define _GNU_SOURCE
#include "CLatheThreads.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>

void lathe_wait_on(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    struct timespec limit = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    // Private: the word is never shared with another process, which spares the kernel a lookup.
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_ns > 0 ? &limit : NULL, NULL, 0);
}

void lathe_wake(uint32_t *word, int32_t count) {
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

int32_t lathe_allowed_cpus(void) {
    cpu_set_t set;
    // The process's id names its main thread: the mask of whichever thread made the pool could
    // be narrower.
    if (sched_getaffinity(getpid(), sizeof set, &set) != 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        return online > 0 ? (int32_t)online : 1;
    }
    int count = CPU_COUNT(&set);
    return count > 0 ? count : 1;
}

int32_t lathe_runnable_threads(void) {
    // "0.94 1.51 1.59 3/512 12345": the fourth field is runnable/total scheduling entities.
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char text[128];
    ssize_t length = read(fd, text, sizeof text - 1);
    close(fd);
    if (length <= 0) return -1;
    text[length] = 0;
    char *field = text;
    for (int spaces = 0; spaces < 3; field++) {
        if (*field == 0) return -1;
        if (*field == ' ') spaces++;
    }
    char *end;
    long runnable = strtol(field, &end, 10);
    return end != field && *end == '/' && runnable >= 0 ? (int32_t)runnable : -1;
}
#else
// No futex: poll. The word is read racily on purpose; the caller re-checks it atomically.
void lathe_wait_on(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected) return;
    struct timespec pause = {0, 50000};
    if (timeout_ns > 0 && timeout_ns < pause.tv_nsec) pause.tv_nsec = timeout_ns;
    nanosleep(&pause, NULL);
}

void lathe_wake(uint32_t *word, int32_t count) { (void)word; (void)count; }

int32_t lathe_allowed_cpus(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int32_t)online : 1;
}

int32_t lathe_runnable_threads(void) { return -1; }
#endif

int32_t lathe_online_cpus(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int32_t)online : 1;
}

void lathe_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void lathe_yield(void) { sched_yield(); }

int64_t lathe_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}
