/*
 * Readiness and descriptor semantics, checked against a TCP echo server.
 *
 *   events <peer_ip> <echo_port> [<own_ip>]
 *
 * Meant to run unmodified under librstcp_preload.so, and just as well on plain
 * kernel sockets. The peer echoes every byte and closes after our SHUT_WR;
 * echo_port+1 must have no listener. With <own_ip>, every connected socket's
 * local address must be <own_ip> (proof that the socket went through rstcp).
 * Prints "PASS <name>" or "FAIL <name>: <reason>" per check, then
 * "N passed, M failed"; exits 0 only if everything passed.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -pthread -o events events.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000 /* bound on every wait that expects something to happen */
#define QUIET_MS 200  /* how long "nothing happens" is watched for */

#include "harness.h"


static const char *new_pipe(int p[2], int flags) {
    CHECK(pipe2(p, flags) == 0, "pipe2: %s", ERR);
    track(p[0]), track(p[1]);
    return NULL;
}

#define NEW_EPOLL(ep) int ep = track(epoll_create1(EPOLL_CLOEXEC)); \
    CHECK(ep >= 0, "epoll_create1: %s", ERR)

static const char *ep_ctl(int ep, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = { events, { .u64 = data } };
    CHECK(epoll_ctl(ep, op, fd, &ev) == 0, "epoll_ctl(%d, fd %d): %s", op, fd, ERR);
    return NULL;
}

static const char *check_names(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    char got[INET_ADDRSTRLEN], want[INET_ADDRSTRLEN];
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0, "getsockname: %s", ERR);
    CHECK(a.sin_family == AF_INET, "getsockname family %d", a.sin_family);
    if (have_own && a.sin_addr.s_addr != own_addr.s_addr) {
        inet_ntop(AF_INET, &a.sin_addr, got, sizeof got);
        inet_ntop(AF_INET, &own_addr, want, sizeof want);
        FAILF("local address %s, expected %s (socket not on rstcp?)", got, want);
    }
    len = sizeof a;
    CHECK(getpeername(fd, (struct sockaddr *)&a, &len) == 0, "getpeername: %s", ERR);
    CHECK(a.sin_addr.s_addr == peer_addr.s_addr && ntohs(a.sin_port) == echo_port,
          "getpeername is not the echo server");
    return NULL;
}

static struct sockaddr_in peer_at(int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = peer_addr };
    return a;
}

/* A plain blocking connect, the way most programs do it. Returns -1 with the
 * reason in errbuf. */
static int echo_connect(void) {
    struct sockaddr_in a = peer_at(echo_port);
    int fd = track(socket(AF_INET, SOCK_STREAM, 0));
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        snprintf(errbuf, sizeof errbuf, "%s: %s", fd < 0 ? "socket" : "connect", ERR);
        return -1;
    }
    return check_names(fd) ? -1 : fd;
}

#define CONNECT(var) int var = echo_connect(); if (var < 0) return errbuf

/* Reads or writes exactly n bytes. poll comes first every time, so this works
 * on blocking and non-blocking descriptors alike and never waits unbounded. */
static const char *xfer(int fd, unsigned char *buf, size_t n, int wr) {
    for (size_t done = 0; done < n;) {
        struct pollfd p = { fd, wr ? POLLOUT : POLLIN, 0 };
        int r = poll(&p, 1, WAIT_MS);
        CHECK(r >= 0 || errno == EINTR, "poll: %s", ERR);
        CHECK(r != 0, "%s timed out after %zu of %zu bytes", wr ? "write" : "read", done, n);
        if (r < 0) continue;
        ssize_t k = wr ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
        CHECK(k != 0, "EOF after %zu of %zu bytes", done, n);
        CHECK(k > 0 || errno == EAGAIN || errno == EINTR, "%s: %s", wr ? "write" : "read", ERR);
        done += k > 0 ? (size_t)k : 0;
    }
    return NULL;
}

/* Sends n fresh bytes and reads the echo back. Only for sizes that fit in
 * the buffers along the path without us reading concurrently. */
static const char *echo_small(int fd, size_t n) {
    unsigned char *out = payload(n), *in = xmalloc(n);
    TRY(xfer(fd, out, n, 1));
    TRY(xfer(fd, in, n, 0));
    return compare(out, in, n);
}

/* Interleaves writing and reading (the echo of a large payload would
 * otherwise deadlock against our own unread data). With half_close, sends
 * FIN after the last byte and requires EOF right after the last echoed byte.
 * The descriptor must be non-blocking. */
static const char *roundtrip_nb(int fd, size_t len, int half_close) {
    unsigned char *out = payload(len), *in = xmalloc(len + 1);
    size_t sent = 0, got = 0;
    int eof = 0;
    while (got < len || (half_close && !eof)) {
        struct pollfd p = { fd, POLLIN | (sent < len ? POLLOUT : 0), 0 };
        int r = poll(&p, 1, WAIT_MS);
        CHECK(r >= 0 || errno == EINTR, "poll: %s", ERR);
        CHECK(r != 0, "stalled: sent %zu, echoed %zu of %zu%s", sent, got, len,
              got == len ? ", no EOF after SHUT_WR" : "");
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t k = write(fd, out + sent, len - sent < 65536 ? len - sent : 65536);
            CHECK(k > 0 || errno == EAGAIN, "write: %s", ERR);
            sent += k > 0 ? (size_t)k : 0;
            if (sent == len && half_close)
                CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown: %s", ERR);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = read(fd, in + got, len + 1 - got);
            CHECK(k >= 0 || errno == EAGAIN, "read: %s (echoed %zu of %zu)", ERR, got, len);
            CHECK(k != 0 || got == len, "EOF after %zu of %zu bytes", got, len);
            eof |= k == 0;
            got += k > 0 ? (size_t)k : 0;
            CHECK(got <= len, "echo longer than what was sent");
        }
    }
    return compare(out, in, len);
}

/* roundtrip_nb for a blocking descriptor, which stays blocking. */
static const char *roundtrip(int fd, size_t len, int half_close) {
    TRY(set_nonblock(fd, 1));
    TRY(roundtrip_nb(fd, len, half_close));
    return set_nonblock(fd, 0);
}

/* Helper threads: one blocked in epoll_wait, one writing after a delay (so
 * the main thread is already waiting when readiness changes). */
struct waiter { int ep, timeout, n, err; struct epoll_event ev; long long t_done; pthread_t th; };

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    w->n = epoll_wait(w->ep, &w->ev, 1, w->timeout);
    w->err = errno;
    w->t_done = now_ms();
    return NULL;
}

struct delayed { int fd; const unsigned char *buf; size_t len; pthread_t th; };

static void *delayed_main(void *arg) {
    struct delayed *d = arg;
    sleep_ms(150);
    if (write(d->fd, d->buf, d->len) != (ssize_t)d->len) perror("delayed write");
    return NULL;
}

#define SPAWN(th, fn, arg) CHECK(pthread_create(&(th), NULL, fn, arg) == 0, "pthread_create failed")

/* ---- checks ---------------------------------------------------------- */

static const char *t_connect(void) {
    CONNECT(s);
    return echo_small(s, 13);
}

/* Four sockets and two pipes in one level-triggered set: the shim must merge
 * its own readiness with the kernel's. A pipe's write end is a separate fd,
 * tagged in the top half of data.u64. */
static const char *t_epoll_lt(void) {
    enum { NCONN = 4, NCH = 6 };
    static const size_t sizes[NCH] = { 5, 1500, 100000, 1 << 20, 300, 200000 };
    struct { int rfd, wfd; unsigned char *out, *in; size_t len, sent, got; } ch[NCH];
    struct epoll_event evs[16];
    NEW_EPOLL(ep);
    for (int i = 0; i < NCH; i++) {
        if (i < NCONN) {
            CONNECT(s);
            TRY(set_nonblock(s, 1));
            ch[i].rfd = ch[i].wfd = s;
            TRY(ep_ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLOUT, i));
        } else {
            int p[2];
            TRY(new_pipe(p, O_NONBLOCK | O_CLOEXEC));
            ch[i].rfd = p[0], ch[i].wfd = p[1];
            TRY(ep_ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, i));
            TRY(ep_ctl(ep, EPOLL_CTL_ADD, p[1], EPOLLOUT, i | 1ULL << 32));
        }
        ch[i].len = sizes[i], ch[i].sent = ch[i].got = 0;
        ch[i].out = payload(sizes[i]), ch[i].in = xmalloc(sizes[i] + 1);
    }
    for (int left = NCH; left > 0;) {
        int n = epoll_wait(ep, evs, 16, WAIT_MS);
        CHECK(n >= 0 || errno == EINTR, "epoll_wait: %s", ERR);
        CHECK(n != 0, "epoll_wait timed out with %d channels unfinished", left);
        for (int k = 0; k < n; k++) {
            int i = (int)(evs[k].data.u64 & 0xffffffff), wside = (int)(evs[k].data.u64 >> 32);
            uint32_t e = evs[k].events;
            CHECK(i >= 0 && i < NCH, "bad data.u64 %llx", (unsigned long long)evs[k].data.u64);
            if (e & EPOLLOUT) {
                size_t chunk = ch[i].len - ch[i].sent;
                CHECK(chunk > 0, "channel %d: EPOLLOUT after it was removed", i);
                ssize_t w = write(ch[i].wfd, ch[i].out + ch[i].sent, chunk < 65536 ? chunk : 65536);
                CHECK(w > 0 || errno == EAGAIN, "channel %d: write: %s", i, ERR);
                ch[i].sent += w > 0 ? (size_t)w : 0;
                if (ch[i].sent == ch[i].len && i < NCONN)
                    TRY(ep_ctl(ep, EPOLL_CTL_MOD, ch[i].wfd, EPOLLIN, i));
                else if (ch[i].sent == ch[i].len)
                    TRY(ep_ctl(ep, EPOLL_CTL_DEL, ch[i].wfd, 0, 0));
            }
            if (!wside && (e & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                ssize_t r = read(ch[i].rfd, ch[i].in + ch[i].got, ch[i].len + 1 - ch[i].got);
                CHECK(r != 0, "channel %d: EOF after %zu bytes", i, ch[i].got);
                CHECK(r > 0 || errno == EAGAIN, "channel %d: read: %s", i, ERR);
                ch[i].got += r > 0 ? (size_t)r : 0;
                CHECK(ch[i].got <= ch[i].len, "channel %d: more data than sent", i);
                left -= r > 0 && ch[i].got == ch[i].len;
            }
        }
    }
    for (int i = 0; i < NCH; i++)
        TRY(compare(ch[i].out, ch[i].in, ch[i].len));
    return NULL;
}

/* Edge-triggered, a socket (index 0) and a pipe (1): drain to EAGAIN on each
 * event; after that, silence until new data comes. */
static const char *et_round(int ep, const int *rfd, const int *wfd, size_t slen, size_t plen) {
    struct { unsigned char *out, *in; size_t len, got; } c[2] = {
        { payload(slen), xmalloc(slen + 1), slen, 0 }, { payload(plen), xmalloc(plen + 1), plen, 0 }
    };
    for (int i = 0; i < 2; i++)
        TRY(xfer(wfd[i], c[i].out, c[i].len, 1));
    while (c[0].got < c[0].len || c[1].got < c[1].len) {
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, WAIT_MS);
        CHECK(n >= 0 || errno == EINTR, "epoll_wait: %s", ERR);
        CHECK(n != 0, "no edge (socket %zu/%zu, pipe %zu/%zu bytes)", c[0].got, c[0].len,
              c[1].got, c[1].len);
        for (int k = 0; k < n; k++) {
            int i = evs[k].data.u32;
            ssize_t r;
            while ((r = read(rfd[i], c[i].in + c[i].got, c[i].len + 1 - c[i].got)) > 0) {
                c[i].got += (size_t)r;
                CHECK(c[i].got <= c[i].len, "more data than sent");
            }
            CHECK(r < 0 && errno == EAGAIN, "%s: read gave %zd (%s)", i ? "pipe" : "socket", r, ERR);
        }
    }
    struct epoll_event ev;
    int n = epoll_wait(ep, &ev, 1, QUIET_MS);
    CHECK(n == 0, "event %#x for the %s after draining to EAGAIN", ev.events,
          ev.data.u32 ? "pipe" : "socket");
    TRY(compare(c[0].out, c[0].in, slen));
    return compare(c[1].out, c[1].in, plen);
}

static const char *t_epoll_et(void) {
    int p[2];
    CONNECT(s);
    TRY(set_nonblock(s, 1));
    TRY(new_pipe(p, O_NONBLOCK));
    NEW_EPOLL(ep);
    TRY(ep_ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLET, 0));
    TRY(ep_ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 1));
    int rfd[2] = { s, p[0] }, wfd[2] = { s, p[1] };
    TRY(et_round(ep, rfd, wfd, 20000, 4000));
    return et_round(ep, rfd, wfd, 777, 50); /* new data must produce a new edge */
}

static const char *t_epoll_oneshot(void) {
    CONNECT(s);
    NEW_EPOLL(ep);
    struct epoll_event got;
    TRY(ep_ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLONESHOT, 7));
    unsigned char *out = payload(1000), *in = xmalloc(1000);
    TRY(xfer(s, out, 1000, 1));
    int n = epoll_wait(ep, &got, 1, WAIT_MS);
    CHECK(n == 1 && (got.events & EPOLLIN) && got.data.u64 == 7, "first wait returned %d", n);
    /* the data is still unread: level-triggered would report it again */
    n = epoll_wait(ep, &got, 1, QUIET_MS);
    CHECK(n == 0, "event %#x before re-arming", got.events);
    TRY(ep_ctl(ep, EPOLL_CTL_MOD, s, EPOLLIN | EPOLLONESHOT, 7));
    n = epoll_wait(ep, &got, 1, WAIT_MS);
    CHECK(n == 1 && (got.events & EPOLLIN), "no event after re-arming (%d)", n);
    n = epoll_wait(ep, &got, 1, QUIET_MS);
    CHECK(n == 0, "event %#x after the re-armed one fired", got.events);
    TRY(xfer(s, in, 1000, 0));
    return compare(out, in, 1000);
}

static const char *t_epoll_mod_wakes(void) {
    CONNECT(s);
    NEW_EPOLL(ep);
    TRY(ep_ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1));
    struct waiter w = { .ep = ep, .timeout = WAIT_MS };
    SPAWN(w.th, waiter_main, &w);
    sleep_ms(QUIET_MS);
    long long t_mod = now_ms();
    const char *e = ep_ctl(ep, EPOLL_CTL_MOD, s, EPOLLIN | EPOLLOUT, 1);
    pthread_join(w.th, NULL);
    TRY(e);
    CHECK(w.n != 0, "waiter timed out: MOD adding EPOLLOUT did not wake it");
    CHECK(w.n == 1, "epoll_wait: %s", strerror(w.err));
    CHECK(w.t_done >= t_mod, "waiter returned before the MOD (events %#x)", w.ev.events);
    CHECK(w.ev.events & EPOLLOUT, "woke with events %#x, no EPOLLOUT", w.ev.events);
    CHECK(w.t_done - t_mod < 2000, "woke %lld ms after the MOD", w.t_done - t_mod);
    return echo_small(s, 100);
}

static const char *t_epoll_del(void) {
    CONNECT(s);
    NEW_EPOLL(ep);
    struct epoll_event ev;
    TRY(ep_ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1));
    struct waiter w = { .ep = ep, .timeout = 1500 };
    SPAWN(w.th, waiter_main, &w);
    sleep_ms(QUIET_MS);
    const char *e = ep_ctl(ep, EPOLL_CTL_DEL, s, 0, 0);
    unsigned char *out = payload(100), *in = xmalloc(100);
    ssize_t k = write(s, out, 100);
    pthread_join(w.th, NULL);
    TRY(e);
    CHECK(k == 100, "write: %s", ERR);
    CHECK(w.n == 0, "waiter got %d (events %#x) for a deleted fd", w.n, w.ev.events);
    /* the echo did arrive, so the silence above was DEL's doing */
    struct pollfd p = { s, POLLIN, 0 };
    CHECK(poll(&p, 1, WAIT_MS) == 1, "echo never arrived");
    /* likewise for an fd already readable: LT reports it until DEL, then not */
    TRY(ep_ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1));
    CHECK(epoll_wait(ep, &ev, 1, 0) == 1, "readable fd not reported after re-ADD");
    TRY(ep_ctl(ep, EPOLL_CTL_DEL, s, 0, 0));
    CHECK(epoll_wait(ep, &ev, 1, QUIET_MS) == 0, "readable fd still reported after DEL");
    TRY(xfer(s, in, 100, 0));
    return compare(out, in, 100);
}

/* An epoll fd inside another epoll set, or inside poll(): the outer wait must
 * wake when a socket in the inner set becomes readable. */
static const char *nested(int use_poll) {
    CONNECT(s);
    NEW_EPOLL(inner);
    NEW_EPOLL(outer);
    TRY(ep_ctl(inner, EPOLL_CTL_ADD, s, EPOLLIN, 1));
    TRY(ep_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 2));
    struct epoll_event ev;
    struct pollfd p = { inner, POLLIN, 0 };
    int n = use_poll ? poll(&p, 1, QUIET_MS) : epoll_wait(outer, &ev, 1, QUIET_MS);
    CHECK(n == 0, "outer wait reported the inner set ready with nothing sent");
    unsigned char *out = payload(500), *in = xmalloc(500);
    struct delayed d = { s, out, 500, 0 };
    SPAWN(d.th, delayed_main, &d);
    n = use_poll ? poll(&p, 1, WAIT_MS) : epoll_wait(outer, &ev, 1, WAIT_MS);
    int err = errno;
    pthread_join(d.th, NULL);
    CHECK(n == 1, "outer wait returned %d (%s)", n, n < 0 ? strerror(err) : "timeout");
    CHECK(use_poll ? p.revents & POLLIN : ev.data.u64 == 2 && (ev.events & EPOLLIN),
          "outer wait reported %#x", use_poll ? (unsigned)p.revents : ev.events);
    CHECK(epoll_wait(inner, &ev, 1, 0) == 1 && ev.data.u64 == 1, "inner set not ready");
    TRY(xfer(s, in, 500, 0));
    return compare(out, in, 500);
}

static const char *t_epoll_nested(void) { return nested(0); }
static const char *t_epoll_in_poll(void) { return nested(1); }

static const char *t_poll(void) {
    int pp[2];
    CONNECT(s);
    TRY(new_pipe(pp, O_CLOEXEC)); /* blocking, like stdin */
    struct pollfd p[2] = { { pp[0], POLLIN, 0 }, { s, POLLIN, 0 } };
    long long t0 = now_ms();
    int n = poll(p, 2, 300);
    long long dt = now_ms() - t0;
    CHECK(n == 0, "idle poll returned %d (revents %#x %#x)", n, p[0].revents, p[1].revents);
    CHECK(dt >= 250 && dt < 2000, "300 ms timeout took %lld ms", dt);
    for (int i = 0; i < 2; i++) { /* first the pipe wakes poll, then the socket */
        size_t len = i ? 2000 : 100;
        unsigned char *out = payload(len), *in = xmalloc(len);
        struct delayed d = { i ? s : pp[1], out, len, 0 };
        SPAWN(d.th, delayed_main, &d);
        n = poll(p, 2, WAIT_MS);
        pthread_join(d.th, NULL);
        CHECK(n == 1 && (p[i].revents & POLLIN) && !p[1 - i].revents,
              "%s: poll %d, revents pipe %#x socket %#x", i ? "socket" : "pipe", n,
              p[0].revents, p[1].revents);
        TRY(xfer(p[i].fd, in, len, 0));
        TRY(compare(out, in, len));
    }
    p[1].events = POLLOUT;
    n = poll(&p[1], 1, WAIT_MS);
    CHECK(n == 1 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP)) == POLLOUT,
          "POLLOUT: poll %d, revents %#x", n, p[1].revents);
    return NULL;
}

static void set2(fd_set *set, int a, int b) {
    FD_ZERO(set);
    FD_SET(a, set);
    FD_SET(b, set);
}

static const char *t_select(void) {
    int pp[2];
    CONNECT(s);
    TRY(new_pipe(pp, 0));
    int maxfd = s > pp[0] ? s : pp[0];
    maxfd = maxfd > pp[1] ? maxfd : pp[1];
    CHECK(maxfd < FD_SETSIZE, "descriptor %d too large for select", maxfd);
    fd_set rd, wr;
    set2(&rd, s, pp[0]);
    struct timeval tv = { 0, 300000 };
    long long t0 = now_ms();
    int n = select(maxfd + 1, &rd, NULL, NULL, &tv);
    long long dt = now_ms() - t0;
    CHECK(n == 0 && !FD_ISSET(s, &rd) && !FD_ISSET(pp[0], &rd), "idle select returned %d", n);
    CHECK(dt >= 250 && dt < 2000, "300 ms timeout took %lld ms", dt);

    unsigned char *so = payload(100), *po = payload(200), *in = xmalloc(200);
    TRY(xfer(s, so, 100, 1));
    TRY(xfer(pp[1], po, 200, 1));
    /* the echo may come after the pipe data: wait until both are reported */
    for (long long end = now_ms() + WAIT_MS; n != 2;) {
        set2(&rd, s, pp[0]);
        tv = (struct timeval){ 0, 100000 };
        n = select(maxfd + 1, &rd, NULL, NULL, &tv);
        CHECK(n >= 0 && now_ms() < end, "select for readable returned %d", n);
    }
    TRY(xfer(s, in, 100, 0));
    TRY(compare(so, in, 100));
    TRY(xfer(pp[0], in, 200, 0));
    TRY(compare(po, in, 200));

    /* nothing is readable now: only the write set may come back */
    set2(&rd, s, pp[0]);
    set2(&wr, s, pp[1]);
    tv = (struct timeval){ WAIT_MS / 1000, 0 };
    n = select(maxfd + 1, &rd, &wr, NULL, &tv);
    CHECK(n == 2 && FD_ISSET(s, &wr) && FD_ISSET(pp[1], &wr), "select for writable returned %d", n);
    CHECK(!FD_ISSET(s, &rd) && !FD_ISSET(pp[0], &rd), "nothing should be readable");
    return NULL;
}

static int so_error(int fd) {
    int e = -1;
    socklen_t len = sizeof e;
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 ? e : -errno;
}

/* Non-blocking connect to the echo port (works) or to echo_port+1 (refused);
 * or a blocking one to echo_port+1. */
static const char *connect_test(int refused, int blocking) {
    struct sockaddr_in a = peer_at(echo_port + refused);
    int s = track(socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK | SOCK_CLOEXEC), 0));
    CHECK(s >= 0, "socket: %s", ERR);
    CHECK(blocking || fcntl(s, F_GETFL) & O_NONBLOCK, "SOCK_NONBLOCK not visible in F_GETFL");
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    if (blocking) {
        CHECK(r < 0 && errno == ECONNREFUSED, "connect: %s", r ? ERR : "connected");
        return NULL;
    }
    if (r == 0) {
        CHECK(!refused, "connected to port %d, which should have no listener", echo_port + 1);
    } else if (refused && errno == ECONNREFUSED) {
        return NULL; /* refused at once: a kernel may do that on loopback */
    } else {
        CHECK(errno == EINPROGRESS, "connect: %s", ERR);
        struct pollfd p = { s, POLLOUT, 0 };
        while ((r = poll(&p, 1, WAIT_MS)) < 0 && errno == EINTR) ;
        CHECK(r == 1, "connect still pending after %d ms (%s)", WAIT_MS, r ? ERR : "timeout");
        if (refused)
            CHECK(p.revents & (POLLERR | POLLHUP), "revents %#x, no POLLERR/POLLHUP", p.revents);
        else
            CHECK((p.revents & (POLLOUT | POLLERR | POLLHUP)) == POLLOUT, "revents %#x", p.revents);
    }
    r = so_error(s);
    CHECK(r == (refused ? ECONNREFUSED : 0), "SO_ERROR %d (%s)", r, strerror(r < 0 ? -r : r));
    CHECK((r = so_error(s)) == 0, "SO_ERROR not cleared by reading it (%d)", r);
    if (refused) return NULL;
    TRY(check_names(s));
    return roundtrip_nb(s, 65536, 1);
}

static const char *t_nb_connect(void) { return connect_test(0, 0); }
static const char *t_nb_connect_refused(void) { return connect_test(1, 0); }
static const char *t_connect_refused(void) { return connect_test(1, 1); }

/* The child must not tear down the parent's connection, neither by closing
 * its copy nor by exiting; exit() runs atexit handlers and destructors,
 * _exit() does not, so both are tried. */
static const char *fork_child(int s, int use_exit) {
    fflush(NULL); /* or the child's exit() would print our buffered output again */
    pid_t pid = fork(), r;
    CHECK(pid >= 0, "fork: %s", ERR);
    if (pid == 0) {
        close(s);
        if (use_exit) exit(0);
        _exit(0);
    }
    int status = 0;
    long long deadline = now_ms() + WAIT_MS;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
        sleep_ms(10);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAILF("child did not exit within %d ms", WAIT_MS);
    }
    CHECK(r == pid, "waitpid: %s", ERR);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    return NULL;
}

static const char *t_fork(void) {
    CONNECT(s);
    TRY(echo_small(s, 1000));
    TRY(fork_child(s, 1));
    TRY(echo_small(s, 5000));
    TRY(fork_child(s, 0));
    TRY(check_names(s));
    return roundtrip(s, 300000, 1);
}

static const char *t_half_close(void) {
    CONNECT(s);
    TRY(roundtrip(s, 300000, 1));
    char c;
    CHECK(read(s, &c, 1) == 0, "second read after EOF did not return 0");
    CHECK(write(s, "x", 1) < 0 && errno == EPIPE, "write after SHUT_WR: %s, not EPIPE", ERR);
    return NULL;
}

/* Send through a duplicate, close the original, read the echo through the
 * duplicate: the connection lives as long as any descriptor refers to it. */
static const char *dup_test(int use_dup2) {
    CONNECT(s);
    int d = 100;
    while (use_dup2 && fcntl(d, F_GETFD) >= 0) d++; /* an unused number */
    d = track(use_dup2 ? dup2(s, d) : dup(s));
    CHECK(d >= 0, "dup: %s", ERR);
    TRY(check_names(d));
    unsigned char *out = payload(5000), *in = xmalloc(5000);
    TRY(xfer(d, out, 5000, 1));
    xclose(s);
    TRY(xfer(d, in, 5000, 0));
    TRY(compare(out, in, 5000));
    return roundtrip(d, 70000, 1);
}

static const char *t_dup(void) { return dup_test(0); }
static const char *t_dup2(void) { return dup_test(1); }

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
    signal(SIGPIPE, SIG_IGN); /* EPIPE is checked explicitly */
    struct sigaction sa = { .sa_handler = on_watchdog };
    sigaction(SIGALRM, &sa, NULL);
    alarm(60);

    run("connect", t_connect);
    run("epoll_level_triggered", t_epoll_lt);
    run("epoll_edge_triggered", t_epoll_et);
    run("epoll_oneshot", t_epoll_oneshot);
    run("epoll_mod_wakes_waiter", t_epoll_mod_wakes);
    run("epoll_del_stops_events", t_epoll_del);
    run("epoll_nested_in_epoll", t_epoll_nested);
    run("epoll_in_poll", t_epoll_in_poll);
    run("poll_pipe_socket", t_poll);
    run("select_socket_pipe", t_select);
    run("nonblocking_connect", t_nb_connect);
    run("nonblocking_connect_refused", t_nb_connect_refused);
    run("blocking_connect_refused", t_connect_refused);
    run("fork_child_closes", t_fork);
    run("half_close", t_half_close);
    run("dup", t_dup);
    run("dup2", t_dup2);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
