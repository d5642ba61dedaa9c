/* What the preload test programs share: the PASS/FAIL plumbing, a table of
 * descriptors and an arena reset after every check (so a failing check can
 * just return), and payload helpers. Included by events.c, calls.c. */
#ifndef RSTCP_PRELOAD_HARNESS_H
#define RSTCP_PRELOAD_HARNESS_H

static struct in_addr peer_addr, own_addr;
static int have_own, echo_port, n_passed, n_failed;
static const char *volatile current = "startup";
static char errbuf[512];

#define FAILF(...) do { snprintf(errbuf, sizeof errbuf, __VA_ARGS__); return errbuf; } while (0)
#define CHECK(c, ...) do { if (!(c)) FAILF(__VA_ARGS__); } while (0)
#define TRY(expr) do { const char *e_ = (expr); if (e_) return e_; } while (0)
#define ERR strerror(errno)

/* Every descriptor a check creates is closed after it, and its buffers come
 * from an arena that is reset after it, so a failing check can just return. */
static int fds[64], nfds;
static unsigned char arena[16 << 20];
static size_t arena_used;

__attribute__((unused)) static int track(int fd) {
    if (fd >= 0 && nfds < 64) fds[nfds++] = fd;
    return fd;
}

__attribute__((unused)) static void xclose(int fd) {
    for (int i = 0; i < nfds; i++)
        if (fds[i] == fd) fds[i] = fds[--nfds];
    close(fd);
}

__attribute__((unused)) static unsigned char *xmalloc(size_t n) {
    if (n > sizeof arena - arena_used) abort();
    arena_used += n;
    return memset(arena + arena_used - n, 0, n);
}

__attribute__((unused)) static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

__attribute__((unused)) static void sleep_ms(int ms) {
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) < 0 && errno == EINTR) ;
}

/* Distinct pseudo-random bytes per call (xorshift, new seed each time), so
 * data crossing between connections or arriving twice cannot compare equal. */
__attribute__((unused)) static unsigned char *payload(size_t n) {
    static uint64_t seed = 0x2545F4914F6CDD1DULL;
    uint64_t x = (seed += 0x9E3779B97F4A7C15ULL) | 1;
    unsigned char *p = xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)(x >> 24);
    }
    return p;
}

__attribute__((unused)) static const char *compare(const unsigned char *want, const unsigned char *got, size_t n) {
    for (size_t i = 0; i < n; i++)
        CHECK(want[i] == got[i], "byte %zu of %zu differs", i, n);
    return NULL;
}

__attribute__((unused)) static const char *set_nonblock(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0, "F_GETFL: %s", ERR);
    CHECK(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0, "F_SETFL: %s", ERR);
    return NULL;
}

#endif
