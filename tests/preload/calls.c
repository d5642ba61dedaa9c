/*
 * The less common socket calls against a TCP echo server: sendfile, vector and
 * message I/O, recv flags, ioctl/fcntl/dup3/close_range, options, splice,
 * writes after the peer closed, short address buffers.
 *
 *   calls <peer_ip> <echo_port> [<own_ip>]
 *
 * Conventions as in events.c: runs under librstcp_preload.so or on plain
 * kernel sockets (the reference); the peer echoes and closes after our
 * SHUT_WR; with <own_ip>, every connection's local address must be it. Prints
 * "PASS <name>" or "FAIL <name>: <reason>", then "N passed, M failed"; exits 0
 * only if everything passed.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -pthread -o calls calls.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000  /* bound on every wait that expects something to happen */
#define RESCUE_MS 5000 /* when a call that should return at once is unblocked by force */
#define GUARD 0xA5     /* fills bytes that no call may write */

#include "harness.h"

static volatile sig_atomic_t sigpipes;
#define RES(r) ((r) < 0 ? strerror(errno) : "succeeded") /* for calls expected to fail */
#define AGAIN(e) ((e) == EAGAIN || (e) == EWOULDBLOCK)
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))


static int wait_for(int fd, short events, int ms) {
    struct pollfd p = { fd, events, 0 };
    int r;
    while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR) ;
    return r;
}

#define WAIT_IN(fd) CHECK(wait_for(fd, POLLIN, WAIT_MS) == 1, "nothing to read in %d ms", WAIT_MS)

static const char *check_names(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0, "getsockname: %s", ERR);
    CHECK(!have_own || a.sin_addr.s_addr == own_addr.s_addr,
          "local address %s, not <own_ip> (socket not on rstcp?)", inet_ntoa(a.sin_addr));
    len = sizeof a;
    CHECK(getpeername(fd, (struct sockaddr *)&a, &len) == 0, "getpeername: %s", ERR);
    CHECK(a.sin_addr.s_addr == peer_addr.s_addr && ntohs(a.sin_port) == echo_port,
          "getpeername is not the echo server");
    return NULL;
}

/* A plain blocking connect. Returns -1 with the reason in errbuf. */
static int echo_connect(void) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(echo_port) };
    a.sin_addr = peer_addr;
    int fd = track(socket(AF_INET, SOCK_STREAM, 0));
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        snprintf(errbuf, sizeof errbuf, "%s: %s", fd < 0 ? "socket" : "connect", ERR);
        return -1;
    }
    return check_names(fd) ? -1 : fd;
}

#define CONNECT(var) int var = echo_connect(); if (var < 0) return errbuf

/* Reads or writes exactly n bytes, poll first every time, so this works on
 * blocking and non-blocking descriptors alike and never waits unbounded. */
static const char *xfer(int fd, unsigned char *buf, size_t n, int wr) {
    for (size_t done = 0; done < n;) {
        CHECK(wait_for(fd, wr ? POLLOUT : POLLIN, WAIT_MS) == 1,
              "%s timed out after %zu of %zu bytes", wr ? "write" : "read", done, n);
        ssize_t k = wr ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
        CHECK(k != 0, "EOF after %zu of %zu bytes", done, n);
        CHECK(k > 0 || AGAIN(errno) || errno == EINTR, "%s: %s", wr ? "write" : "read", ERR);
        done += k > 0 ? (size_t)k : 0;
    }
    return NULL;
}

/* Sends n fresh bytes and reads the echo back (sizes that fit in buffers). */
static const char *echo_small(int fd, size_t n) {
    unsigned char *out = payload(n), *in = xmalloc(n);
    TRY(xfer(fd, out, n, 1));
    TRY(xfer(fd, in, n, 0));
    return compare(out, in, n);
}

/* recv with a helper thread that writes `late` 150 ms in (so recv is already
 * waiting) and, if recv has not returned after RESCUE_MS, sends our FIN: the
 * echo server closes and the stuck recv sees EOF. So a call that wrongly
 * blocks fails its check, not the whole run. */
struct guarded {
    int fd; const unsigned char *late; size_t nlate;
    volatile int done, fired; ssize_t k; int err; long long ms; pthread_t th;
};

static void *helper_main(void *arg) {
    struct guarded *g = arg;
    for (int t = 0; t < RESCUE_MS && !g->done; t += 10, sleep_ms(10))
        if (t == 150 && g->late && write(g->fd, g->late, g->nlate) != (ssize_t)g->nlate)
            perror("late write");
    if (!g->done) g->fired = 1, shutdown(g->fd, SHUT_WR);
    return NULL;
}

static const char *guarded_recv(struct guarded *g, int fd, void *buf, size_t n, int flags,
                                const unsigned char *late, size_t nlate) {
    *g = (struct guarded){ .fd = fd, .late = late, .nlate = nlate };
    CHECK(pthread_create(&g->th, NULL, helper_main, g) == 0, "pthread_create failed");
    long long t0 = now_ms();
    g->k = recv(fd, buf, n, flags);
    g->err = errno, g->ms = now_ms() - t0, g->done = 1;
    pthread_join(g->th, NULL);
    return NULL;
}

static const char *expect_eagain(struct guarded *g, int fd, int flags, const char *what) {
    char c;
    TRY(guarded_recv(g, fd, &c, 1, flags, NULL, 0));
    CHECK(g->k < 0 && AGAIN(g->err), "%s on an idle socket: %s", what,
          g->k < 0 ? strerror(g->err) : g->fired ? "blocked (until the rescue)" : "returned data");
    return NULL;
}

/* ---- sendfile -------------------------------------------------------- */

/* ~2 MB from a file at an odd start, while reading the echo (it would not fit
 * in the buffers along the path); FIN after the last byte, so anything sent
 * twice shows as data before EOF. */
static const char *sendfile_test(int use_off) {
    enum { SIZE = (2 << 20) + 4321, START = 12345, POS = 777 };
    const size_t len = SIZE - START;
    unsigned char *data = payload(SIZE), *in = xmalloc(len + 1);
    char path[] = "/tmp/rstcp-calls-XXXXXX";
    int f = track(mkstemp(path));
    CHECK(f >= 0, "mkstemp: %s", ERR);
    unlink(path); /* nothing left behind, whatever happens next */
    CHECK(write(f, data, SIZE) == SIZE, "writing %s: %s", path, ERR);
    /* with an offset the file position must stay put, wherever it is */
    off_t off = START, pos = use_off ? POS : START;
    CHECK(lseek(f, pos, SEEK_SET) == pos, "lseek: %s", ERR);
    CONNECT(s);
    TRY(set_nonblock(s, 1));
    size_t sent = 0, got = 0;
    for (int eof = 0; !eof;) {
        struct pollfd p = { s, POLLIN | (sent < len ? POLLOUT : 0), 0 };
        int r = poll(&p, 1, WAIT_MS);
        CHECK(r >= 0 || errno == EINTR, "poll: %s", ERR);
        CHECK(r != 0, "stalled: sent %zu, echoed %zu of %zu", sent, got, len);
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t k = sendfile(s, f, use_off ? &off : NULL, len - sent);
            CHECK(k > 0 || (k < 0 && AGAIN(errno)), "sendfile after %zu bytes: %s", sent,
                  k ? ERR : "returned 0");
            sent += k > 0 ? (size_t)k : 0;
            CHECK(sent <= len, "sendfile sent more than asked");
            CHECK(!use_off || off == (off_t)(START + sent), "offset %lld after %zu bytes sent",
                  (long long)off, sent);
            if (sent == len) CHECK(shutdown(s, SHUT_WR) == 0, "shutdown: %s", ERR);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = read(s, in + got, len + 1 - got);
            CHECK(k >= 0 || AGAIN(errno), "read: %s (echoed %zu of %zu)", ERR, got, len);
            CHECK(k != 0 || got == len, "EOF after %zu of %zu bytes", got, len);
            eof = k == 0;
            got += k > 0 ? (size_t)k : 0;
            CHECK(got <= len, "echo longer than what was sent");
        }
    }
    off_t now = lseek(f, 0, SEEK_CUR), want = use_off ? POS : SIZE;
    CHECK(now == want, "file position %lld afterwards, not %lld", (long long)now, (long long)want);
    return compare(data + START, in, len);
}

static const char *t_sendfile_offset(void) { return sendfile_test(1); }
static const char *t_sendfile_position(void) { return sendfile_test(0); }

/* ---- vector and message I/O ------------------------------------------ */

/* Chunks of odd sizes with GAP guard bytes around each; `fill` (n_fill
 * bytes) goes into the chunks in order. A call that ignored the chunk
 * boundaries would write into a guard. */
#define GAP 16
struct scat { struct iovec iov[8]; int n; size_t total, span; unsigned char *base; };

static void scatter(struct scat *v, const size_t *sizes, int n, const void *fill, size_t n_fill) {
    v->span = GAP;
    for (int i = 0; i < n; i++) v->span += sizes[i] + GAP;
    unsigned char *p = v->base = memset(xmalloc(v->span), GUARD, v->span);
    v->n = n, v->total = 0;
    for (int i = 0; i < n; i++) {
        size_t k = v->total < n_fill ? n_fill - v->total : 0;
        p += GAP;
        if (k) memcpy(p, (const unsigned char *)fill + v->total, k < sizes[i] ? k : sizes[i]);
        v->iov[i] = (struct iovec){ p, sizes[i] };
        v->total += sizes[i], p += sizes[i];
    }
}

/* The part of v after its first `done` bytes. */
static int iov_rest(const struct scat *v, size_t done, struct iovec *out) {
    int k = 0;
    for (int i = 0; i < v->n; done -= done < v->iov[i].iov_len ? done : v->iov[i].iov_len, i++)
        if (done < v->iov[i].iov_len)
            out[k++] = (struct iovec){ (char *)v->iov[i].iov_base + done,
                                       v->iov[i].iov_len - done };
    return k;
}

/* writev+readv, or sendmsg+recvmsg with a name and control buffer that a
 * stream socket leaves empty. */
static const char *vector_test(int use_msg) {
    static const size_t out_sizes[] = { 1, 4093, 7, 0, 9001, 13, 333, 4097 }; /* 17545 */
    static const size_t in_sizes[] = { 3, 1000, 1, 5001, 77, 12000, 97 };    /* 18179 */
    const char *what = use_msg ? "recvmsg" : "readv";
    struct scat out, in, want;
    struct iovec rest[8];
    unsigned char *data = payload(17545);
    scatter(&out, out_sizes, COUNT(out_sizes), data, 17545);
    scatter(&in, in_sizes, COUNT(in_sizes), NULL, 0);
    scatter(&want, in_sizes, COUNT(in_sizes), data, 17545); /* what `in` must become */
    CONNECT(s);
    struct msghdr m = { .msg_iov = out.iov, .msg_iovlen = out.n };
    ssize_t k = use_msg ? sendmsg(s, &m, MSG_NOSIGNAL) : writev(s, out.iov, out.n);
    /* a blocking stream socket takes it all, or waits until it can */
    CHECK(k == (ssize_t)out.total, "%s returned %zd of %zu (%s)", use_msg ? "sendmsg" : "writev",
          k, out.total, k < 0 ? ERR : "short");
    for (size_t got = 0; got < out.total; got += (size_t)k) {
        WAIT_IN(s);
        int n = iov_rest(&in, got, rest);
        struct sockaddr_in from;
        char control[64];
        memset(&from, GUARD, sizeof from);
        m = (struct msghdr){ .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = rest,
                             .msg_iovlen = n, .msg_control = control,
                             .msg_controllen = sizeof control, .msg_flags = -1 };
        k = use_msg ? recvmsg(s, &m, 0) : readv(s, rest, n);
        CHECK(k > 0, "%s after %zu of %zu bytes: %s", what, got, out.total, k ? ERR : "EOF");
        if (!use_msg) continue;
        CHECK(m.msg_namelen <= sizeof from, "recvmsg: msg_namelen %u", m.msg_namelen);
        CHECK(m.msg_flags == 0, "recvmsg: msg_flags %#x", (unsigned)m.msg_flags);
        CHECK(m.msg_controllen == 0, "recvmsg: msg_controllen %zu", (size_t)m.msg_controllen);
    }
    TRY(compare(want.base, in.base, in.span)); /* data in the chunks, guards intact */
    return echo_small(s, 100);
}

static const char *t_writev_readv(void) { return vector_test(0); }
static const char *t_sendmsg_recvmsg(void) { return vector_test(1); }

/* Three messages of two iovecs out; the echo read into four smaller
 * messages, as many per call as have arrived. */
static const char *t_mmsg(void) {
    enum { NOUT = 3, NIN = 4, INCAP = 10000, TOTAL = 31452 };
    static const size_t sizes[NOUT][2] = { { 100, 1 }, { 2999, 7 }, { 12345, 16000 } };
    struct mmsghdr mo[NOUT], mi[NIN];
    struct iovec io[NOUT][2], ii[NIN];
    unsigned char *data = payload(TOTAL), *in = xmalloc(TOTAL), *p = data;
    memset(mo, 0, sizeof mo);
    for (int i = 0; i < NOUT; i++) {
        for (int j = 0; j < 2; j++) io[i][j] = (struct iovec){ p, sizes[i][j] }, p += sizes[i][j];
        mo[i].msg_hdr.msg_iov = io[i], mo[i].msg_hdr.msg_iovlen = 2;
        mo[i].msg_len = 0xdeadbeef; /* must be overwritten */
    }
    CONNECT(s);
    int r = sendmmsg(s, mo, NOUT, MSG_NOSIGNAL);
    CHECK(r == NOUT, "sendmmsg returned %d (%s)", r, r < 0 ? ERR : "short");
    for (int i = 0; i < NOUT; i++)
        CHECK(mo[i].msg_len == sizes[i][0] + sizes[i][1], "message %d: msg_len %u, sent %zu", i,
              mo[i].msg_len, sizes[i][0] + sizes[i][1]);
    for (size_t got = 0; got < TOTAL;) {
        WAIT_IN(s);
        memset(mi, 0, sizeof mi);
        for (int i = 0; i < NIN; i++) {
            ii[i] = (struct iovec){ xmalloc(INCAP), INCAP };
            mi[i].msg_hdr.msg_iov = &ii[i], mi[i].msg_hdr.msg_iovlen = 1;
        }
        r = recvmmsg(s, mi, NIN, MSG_WAITFORONE, NULL);
        CHECK(r >= 1 && r <= NIN, "recvmmsg after %zu of %d bytes returned %d (%s)", got, TOTAL,
              r, r < 0 ? ERR : "nothing");
        for (int i = 0; i < r; got += mi[i++].msg_len) {
            CHECK(mi[i].msg_len > 0 && mi[i].msg_len <= INCAP, "message %d: msg_len %u", i,
                  mi[i].msg_len);
            CHECK(got + mi[i].msg_len <= TOTAL, "echo longer than what was sent");
            memcpy(in + got, ii[i].iov_base, mi[i].msg_len);
        }
    }
    return compare(data, in, TOTAL);
}

/* ---- recv flags ------------------------------------------------------ */

/* Peeks until the whole echo shows, each a growing prefix; then it is all
 * still there to read, once. */
static const char *t_recv_peek(void) {
    enum { N = 2000 };
    unsigned char *out = payload(N), *in = xmalloc(N);
    CONNECT(s);
    TRY(xfer(s, out, N, 1));
    ssize_t k = 0;
    for (long long end = now_ms() + WAIT_MS; k < N;) {
        WAIT_IN(s);
        ssize_t prev = k;
        k = recv(s, in, N, MSG_PEEK);
        CHECK(k > 0, "recv MSG_PEEK: %s", k ? ERR : "EOF");
        CHECK(k >= prev, "a peek showed %zd bytes, an earlier one %zd", k, prev);
        TRY(compare(out, in, (size_t)k));
        CHECK(now_ms() < end, "only %zd of %d bytes echoed", k, N);
        if (k < N) sleep_ms(5);
    }
    memset(in, 0, N);
    CHECK(wait_for(s, POLLIN, WAIT_MS) == 1, "the peeked data is gone (MSG_PEEK consumed it?)");
    TRY(xfer(s, in, N, 0));
    TRY(compare(out, in, N));
    CHECK(wait_for(s, POLLIN, 100) == 0, "still readable after reading what was peeked");
    return NULL;
}

/* The second half is written 150 ms after recv started waiting: MSG_WAITALL
 * must not return with the first half alone. */
static const char *t_recv_waitall(void) {
    enum { N = 32000, HALF = N / 2 };
    unsigned char *out = payload(N), *in = xmalloc(N);
    struct guarded g;
    CONNECT(s);
    TRY(xfer(s, out, HALF, 1));
    TRY(guarded_recv(&g, s, in, N, MSG_WAITALL, out + HALF, N - HALF));
    CHECK(g.k == N, "recv MSG_WAITALL returned %zd of %d (%s)", g.k, N,
          g.k < 0 ? strerror(g.err) : g.fired ? "only after the rescue" : "short");
    return compare(out, in, N);
}

static const char *t_recv_dontwait(void) {
    struct guarded g;
    CONNECT(s);
    TRY(expect_eagain(&g, s, MSG_DONTWAIT, "recv MSG_DONTWAIT"));
    CHECK(!(fcntl(s, F_GETFL) & O_NONBLOCK), "MSG_DONTWAIT left O_NONBLOCK set");
    return echo_small(s, 321);
}

/* A stream socket reports no source address (the kernel writes length 0);
 * whatever is written must fit. */
static const char *t_recvfrom_addr(void) {
    enum { N = 500 };
    unsigned char *out = payload(N), *in = xmalloc(N);
    struct { struct sockaddr_in a; unsigned char guard[16]; } from;
    CONNECT(s);
    TRY(xfer(s, out, N, 1));
    WAIT_IN(s);
    memset(&from, GUARD, sizeof from);
    socklen_t len = sizeof from.a;
    ssize_t k = recvfrom(s, in, N, 0, (struct sockaddr *)&from.a, &len);
    CHECK(k > 0, "recvfrom: %s", k ? ERR : "EOF");
    CHECK(len <= sizeof from.a, "recvfrom address length %u, buffer %zu", len, sizeof from.a);
    for (size_t i = 0; i < sizeof from.guard; i++)
        CHECK(from.guard[i] == GUARD, "recvfrom wrote past the address buffer");
    TRY(xfer(s, in + k, N - (size_t)k, 0));
    return compare(out, in, N);
}

/* ---- ioctl, fcntl, dup3, close_range --------------------------------- */

static const char *t_fionread(void) {
    enum { N = 3000 };
    unsigned char *out = payload(N), *in = xmalloc(N);
    int n = -1;
    CONNECT(s);
    CHECK(ioctl(s, FIONREAD, &n) == 0, "FIONREAD: %s", ERR);
    CHECK(n == 0, "FIONREAD %d on an idle socket", n);
    TRY(xfer(s, out, N, 1));
    for (long long end = now_ms() + WAIT_MS; n < N; sleep_ms(5)) {
        CHECK(ioctl(s, FIONREAD, &n) == 0, "FIONREAD: %s", ERR);
        CHECK(now_ms() < end, "FIONREAD still %d after %d ms; %d bytes echoed", n, WAIT_MS, N);
    }
    TRY(xfer(s, in, N, 0));
    TRY(compare(out, in, N));
    CHECK(ioctl(s, FIONREAD, &n) == 0 && n == 0, "FIONREAD %d after reading everything", n);
    return NULL;
}

static const char *t_fionbio(void) {
    enum { N = 300 };
    unsigned char *out = payload(N), *in = xmalloc(N);
    struct guarded g;
    int on = 1;
    CONNECT(s);
    CHECK(ioctl(s, FIONBIO, &on) == 0, "FIONBIO on: %s", ERR);
    CHECK(fcntl(s, F_GETFL) & O_NONBLOCK, "FIONBIO on, but F_GETFL shows no O_NONBLOCK");
    TRY(expect_eagain(&g, s, 0, "recv after FIONBIO on"));
    on = 0;
    CHECK(ioctl(s, FIONBIO, &on) == 0, "FIONBIO off: %s", ERR);
    CHECK(!(fcntl(s, F_GETFL) & O_NONBLOCK), "FIONBIO off, but F_GETFL shows O_NONBLOCK");
    /* blocking again: recv waits for data written after it started */
    TRY(guarded_recv(&g, s, in, N, 0, out, N));
    CHECK(g.k > 0 && !g.fired, "blocking recv after FIONBIO off: %s",
          g.k < 0 ? strerror(g.err) : g.k ? "waited for the rescue" : "EOF");
    TRY(xfer(s, in + g.k, N - (size_t)g.k, 0));
    return compare(out, in, N);
}

/* The copy must carry FD_CLOEXEC (the original not) and outlive it. */
static const char *cloexec_copy(int s, int d, int at_least) {
    CHECK(d >= at_least, "got descriptor %d, asked for >= %d (%s)", d, at_least, d < 0 ? ERR : "");
    track(d);
    CHECK(fcntl(d, F_GETFD) == FD_CLOEXEC, "copy's F_GETFD %d, not FD_CLOEXEC", fcntl(d, F_GETFD));
    CHECK(fcntl(s, F_GETFD) == 0, "original's F_GETFD %d changed", fcntl(s, F_GETFD));
    TRY(echo_small(d, 1000));
    xclose(s);
    TRY(check_names(d));
    return echo_small(d, 20000);
}

static const char *t_dupfd_cloexec(void) {
    CONNECT(s);
    return cloexec_copy(s, fcntl(s, F_DUPFD_CLOEXEC, 50), 50);
}

/* The first of `count` unused descriptor numbers from `from` on. */
static int free_fd(int from, int count) {
    for (int i = 0; i < count; i++)
        if (fcntl(from + i, F_GETFD) >= 0 || errno != EBADF) from += i + 1, i = -1;
    return from;
}

static const char *t_dup3_cloexec(void) {
    CONNECT(s);
    int r = dup3(s, s, O_CLOEXEC);
    CHECK(r < 0 && errno == EINVAL, "dup3 onto itself: %s, not EINVAL", RES(r));
    int n = free_fd(150, 1);
    return cloexec_copy(s, dup3(s, n, O_CLOEXEC), n);
}

/* glibc's wrapper where there is one: that is the symbol the shim hooks. */
static int xclose_range(unsigned first, unsigned last) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
    return close_range(first, last, 0);
#else
    return (int)syscall(SYS_close_range, first, last, 0);
#endif
}

static const char *t_close_range(void) {
    CONNECT(a);
    CONNECT(b);
    CONNECT(outside);
    int n = free_fd(200, 2);
    CHECK(track(dup2(a, n)) == n && track(dup2(b, n + 1)) == n + 1, "dup2: %s", ERR);
    xclose(a), xclose(b);
    TRY(echo_small(n, 100));
    TRY(echo_small(n + 1, 100));
    CHECK(xclose_range(n, n + 1) == 0, "close_range(%d, %d): %s", n, n + 1, ERR);
    for (int fd = n; fd <= n + 1; fd++) {
        ssize_t k = send(fd, "x", 1, MSG_NOSIGNAL);
        CHECK(k < 0 && errno == EBADF, "send on %d after close_range: %s, not EBADF", fd, RES(k));
    }
    TRY(echo_small(outside, 5000));
    /* the number again, for a new connection: nothing of the old one may stick */
    CONNECT(c);
    CHECK(dup2(c, n) == n, "dup2 onto the closed number: %s", ERR);
    xclose(c);
    TRY(check_names(n));
    return echo_small(n, 5000);
}

/* ---- socket options -------------------------------------------------- */

static const char *opt_get(int fd, int level, int name, const char *what, int *v) {
    socklen_t len = sizeof *v;
    *v = -12345;
    CHECK(getsockopt(fd, level, name, v, &len) == 0, "getsockopt %s: %s", what, ERR);
    CHECK(len == sizeof *v, "getsockopt %s: length %u", what, (unsigned)len);
    return NULL;
}

/* Off by default, then on and off again, each read back. */
static const char *flag_roundtrip(int fd, int level, int name, const char *what) {
    int v;
    TRY(opt_get(fd, level, name, what, &v));
    CHECK(v == 0, "%s is %d by default", what, v);
    for (int want = 1; want >= 0; want--) {
        CHECK(setsockopt(fd, level, name, &want, sizeof want) == 0, "setsockopt %s=%d: %s", what,
              want, ERR);
        TRY(opt_get(fd, level, name, what, &v));
        CHECK(!!v == want, "%s set to %d reads back %d", what, want, v);
    }
    return NULL;
}

static const char *t_sockopts(void) {
    int v = 1;
    CONNECT(s);
    TRY(flag_roundtrip(s, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"));
    TRY(flag_roundtrip(s, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"));
    CHECK(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0, "TCP_NODELAY: %s", ERR);
    TRY(opt_get(s, SOL_SOCKET, SO_TYPE, "SO_TYPE", &v));
    CHECK(v == SOCK_STREAM, "SO_TYPE %d, not SOCK_STREAM", v);
    TRY(opt_get(s, SOL_SOCKET, SO_ERROR, "SO_ERROR", &v));
    CHECK(v == 0, "SO_ERROR %d (%s) on a healthy connection", v, strerror(v));
    return echo_small(s, 1000);
}

static const char *t_rcvtimeo(void) {
    struct timeval tv = { 0, 300000 };
    socklen_t len = sizeof tv;
    struct guarded g;
    CONNECT(s);
    CHECK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "set SO_RCVTIMEO: %s", ERR);
    memset(&tv, 0, sizeof tv);
    CHECK(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0, "get SO_RCVTIMEO: %s", ERR);
    long long ms = tv.tv_sec * 1000LL + tv.tv_usec / 1000;
    CHECK(len == sizeof tv && ms >= 250 && ms <= 350, "SO_RCVTIMEO reads back %lld ms (len %u)",
          ms, len);
    TRY(expect_eagain(&g, s, 0, "blocking recv with a 300 ms SO_RCVTIMEO"));
    CHECK(g.ms >= 200 && g.ms <= 3000, "300 ms receive timeout took %lld ms", g.ms);
    return echo_small(s, 777); /* a timeout leaves the connection as it was */
}

/* Options a user-space stack may not implement: refusing is acceptable,
 * crashing or answering nonsense is not; a value that was accepted must read
 * back as set (the kernel does so for all of these). */
static const char *t_other_opts(void) {
    static const struct { int level, name, value; const char *what; } o[] = {
        { IPPROTO_IP, IP_TOS, 0x10, "IP_TOS" },
        { IPPROTO_IP, IP_TTL, 33, "IP_TTL" },
        { SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY" },
    };
    CONNECT(s);
    for (int i = 0; i < COUNT(o); i++) {
        int v = o[i].value, set = setsockopt(s, o[i].level, o[i].name, &v, sizeof v);
        CHECK(set == 0 || errno == ENOPROTOOPT || errno == EOPNOTSUPP, "setsockopt %s: %s",
              o[i].what, ERR);
        socklen_t len = sizeof v;
        v = -12345;
        if (getsockopt(s, o[i].level, o[i].name, &v, &len) < 0) {
            CHECK(errno == ENOPROTOOPT || errno == EOPNOTSUPP, "getsockopt %s: %s", o[i].what, ERR);
            continue;
        }
        CHECK(len >= 1 && len <= sizeof v, "getsockopt %s: length %u", o[i].what, len);
        CHECK(set || (len == sizeof v && v == o[i].value), "%s set to %d reads back %d (len %u)",
              o[i].what, o[i].value, v, len);
    }
    return echo_small(s, 1000);
}

/* ---- splice, write after close, short address buffers ----------------- */

/* The shim refuses splice on its sockets with EINVAL (programs then fall back
 * to read/write): accepted, provided the refusal consumed nothing. */
static const char *t_splice(void) {
    enum { N = 5000 };
    unsigned char *out = payload(N), *in = xmalloc(N);
    int p[2];
    CONNECT(s);
    CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2: %s", ERR);
    track(p[0]), track(p[1]);
    TRY(set_nonblock(s, 1));
    TRY(xfer(s, out, N, 1));
    for (size_t got = 0; got < N;) {
        WAIT_IN(s);
        ssize_t k = splice(s, NULL, p[1], NULL, N - got, SPLICE_F_NONBLOCK);
        if (k < 0 && errno == EINVAL && got == 0) {
            TRY(xfer(s, in, N, 0));
            break;
        }
        CHECK(k != 0, "splice: EOF after %zu of %d bytes", got, N);
        CHECK(k > 0 || AGAIN(errno), "splice after %zu bytes: %s", got, ERR);
        if (k > 0) TRY(xfer(p[0], in + got, (size_t)k, 0));
        got += k > 0 ? (size_t)k : 0;
    }
    TRY(compare(out, in, N));
    TRY(set_nonblock(s, 0));
    return echo_small(s, 100);
}

static void on_sigpipe(int sig) { (void)sig; sigpipes++; }

/* Our FIN, the echo to EOF: the server has closed. Writes must fail with
 * EPIPE/ECONNRESET; MSG_NOSIGNAL keeps SIGPIPE away, a plain write raises it
 * (the control showing that the handler would have noticed). */
static const char *t_write_after_close(void) {
    enum { N = 1000 };
    unsigned char *out = payload(N), *in = xmalloc(N);
    CONNECT(s);
    TRY(xfer(s, out, N, 1));
    CHECK(shutdown(s, SHUT_WR) == 0, "shutdown: %s", ERR);
    TRY(xfer(s, in, N, 0));
    TRY(compare(out, in, N));
    WAIT_IN(s);
    CHECK(read(s, in, 1) == 0, "no EOF after the echo");
    int before = sigpipes;
    ssize_t k;
    long long end = now_ms() + WAIT_MS;
    while ((k = send(s, out, N, MSG_NOSIGNAL)) >= 0 && now_ms() < end) sleep_ms(10);
    CHECK(k < 0, "send kept succeeding for %d ms after the peer closed", WAIT_MS);
    CHECK(errno == EPIPE || errno == ECONNRESET, "send failed with %s, not EPIPE/ECONNRESET", ERR);
    CHECK(sigpipes == before, "SIGPIPE despite MSG_NOSIGNAL");
    k = write(s, out, 1);
    CHECK(k < 0 && (errno == EPIPE || errno == ECONNRESET), "plain write: %s", RES(k));
    CHECK(errno != EPIPE || sigpipes == before + 1,
          "plain write failed with EPIPE but raised %d SIGPIPE (the kernel: 1)", sigpipes - before);
    return NULL;
}

/* Room for 0, 4 and 8 bytes: the call writes at most that (the guard after
 * shows overflow), and reports the full length, as the kernel does. */
static const char *short_name(int fd, int peer) {
    struct sockaddr_in full;
    socklen_t len = sizeof full;
    const char *what = peer ? "getpeername" : "getsockname";
    int r = peer ? getpeername(fd, (struct sockaddr *)&full, &len)
                 : getsockname(fd, (struct sockaddr *)&full, &len);
    CHECK(r == 0, "%s: %s", what, ERR);
    for (socklen_t room = 0; room <= 8; room += 4) {
        unsigned char buf[sizeof full + 16];
        memset(buf, GUARD, sizeof buf);
        len = room;
        r = peer ? getpeername(fd, (struct sockaddr *)buf, &len)
                 : getsockname(fd, (struct sockaddr *)buf, &len);
        CHECK(r == 0, "%s with room for %u bytes: %s", what, room, ERR);
        CHECK(len == sizeof full, "%s with room for %u bytes reports length %u, not %zu", what,
              room, len, sizeof full);
        CHECK(memcmp(buf, &full, room) == 0, "%s: the %u bytes written are not the address'",
              what, room);
        for (size_t i = room; i < sizeof buf; i++)
            CHECK(buf[i] == GUARD, "%s with room for %u bytes wrote byte %zu", what, room, i);
    }
    return NULL;
}

static const char *t_short_names(void) {
    CONNECT(s);
    TRY(short_name(s, 0));
    TRY(short_name(s, 1));
    return echo_small(s, 100);
}

static void run(const char *name, const char *(*fn)(void)) {
    current = name;
    const char *err = fn();
    while (nfds) close(fds[--nfds]);
    arena_used = 0;
    if (err) printf("FAIL %s: %s\n", name, err), n_failed++;
    else printf("PASS %s\n", name), n_passed++;
}

static void on_watchdog(int sig) {
    static const char msg[] = "FAIL watchdog: 60 s total exceeded in ";
    const char *c = current;
    (void)sig;
    if (write(1, msg, sizeof msg - 1) < 0 || write(1, c, strlen(c)) < 0 || write(1, "\n", 1) < 0)
        _exit(3);
    _exit(1);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4 || inet_pton(AF_INET, argv[1], &peer_addr) != 1 ||
        (echo_port = atoi(argv[2])) <= 0 || echo_port >= 65535 ||
        (argc == 4 && inet_pton(AF_INET, argv[3], &own_addr) != 1)) {
        fprintf(stderr, "usage: %s <peer_ip> <echo_port> [<own_ip>]\n", argv[0]);
        return 2;
    }
    have_own = argc == 4;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* counted, not ignored: write_after_peer_close checks when it fires */
    struct sigaction sa = { .sa_handler = on_sigpipe };
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_watchdog;
    sigaction(SIGALRM, &sa, NULL);
    alarm(60);

    run("sendfile_offset", t_sendfile_offset);
    run("sendfile_file_position", t_sendfile_position);
    run("writev_readv", t_writev_readv);
    run("sendmsg_recvmsg", t_sendmsg_recvmsg);
    run("sendmmsg_recvmmsg", t_mmsg);
    run("recv_peek", t_recv_peek);
    run("recv_waitall", t_recv_waitall);
    run("recv_dontwait", t_recv_dontwait);
    run("recvfrom_address", t_recvfrom_addr);
    run("ioctl_fionread", t_fionread);
    run("ioctl_fionbio", t_fionbio);
    run("fcntl_dupfd_cloexec", t_dupfd_cloexec);
    run("dup3_cloexec", t_dup3_cloexec);
    run("close_range", t_close_range);
    run("sockopt_nodelay_keepalive_type_error", t_sockopts);
    run("sockopt_rcvtimeo", t_rcvtimeo);
    run("sockopt_unknown_to_stack", t_other_opts);
    run("splice_socket_to_pipe", t_splice);
    run("write_after_peer_close", t_write_after_close);
    run("short_name_buffers", t_short_names);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
