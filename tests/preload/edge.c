/* Edge cases of the LD_PRELOAD shim found in review, each a check that a
 * plain kernel socket passes too:
 *
 *     edge <peer_ip> <echo_port> [<own_ip>]
 *
 * The peer echoes everything and closes after our SHUT_WR. Prints
 * "PASS name" / "FAIL name: reason" per check and "N passed, M failed";
 * exits 0 only if everything passed. A 60 s alarm ends a hung run. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct in_addr peer, own;
static int echo_port, have_own, passed, failed;
static char why[256];

#define FAIL(...) do { snprintf(why, sizeof why, __VA_ARGS__); return 0; } while (0)
#define CHECK(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)

static void run(const char *name, int (*check)(void)) {
    why[0] = 0;
    if (check()) {
        printf("PASS %s\n", name);
        passed++;
    } else {
        printf("FAIL %s: %s\n", name, why);
        failed++;
    }
    fflush(stdout);
}

/* A blocking connection to the echo server (through rstcp when own is set). */
static int echo_conn(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(echo_port), .sin_addr = peer };
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    if (have_own) {
        struct sockaddr_in me;
        socklen_t len = sizeof me;
        if (getsockname(s, (struct sockaddr *)&me, &len) < 0 || me.sin_addr.s_addr != own.s_addr) {
            close(s);
            errno = EPROTO; /* not on rstcp */
            return -1;
        }
    }
    return s;
}

/* Sends `msg` and waits (bounded) until its echo is readable. */
static int echo_pending(int s, const char *msg) {
    if (write(s, msg, strlen(msg)) != (ssize_t)strlen(msg))
        return 0;
    struct pollfd p = { s, POLLIN, 0 };
    return poll(&p, 1, 5000) == 1;
}

/* An epoll set holding a socket and its dup: removing the dup must leave
 * the socket's own registration working. */
static int t_epoll_dup_del(void) {
    int s = echo_conn();
    CHECK(s >= 0, "connect: %s", strerror(errno));
    int d = dup(s), ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0, "ADD s: %s", strerror(errno));
    ev.data.u64 = 2;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev) == 0, "ADD dup: %s", strerror(errno));
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL) == 0, "DEL dup: %s", strerror(errno));
    CHECK(echo_pending(s, "dup-del"), "no echo");
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, 5000);
    CHECK(n == 1 && out[0].data.u64 == 1, "epoll_wait gave %d (data %llu)", n,
          n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
    close(d);
    close(s);
    close(ep);
    return 1;
}

/* An epoll descriptor closed by close_range, and a new epoll set that gets
 * its number: the new set must report what is put in it. */
static int t_epoll_number_reused(void) {
    int s = echo_conn();
    CHECK(s >= 0, "connect: %s", strerror(errno));
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0, "ADD: %s", strerror(errno));
    CHECK(close_range(ep, ep, 0) == 0, "close_range: %s", strerror(errno));
    int ep2 = epoll_create1(0);
    CHECK(ep2 == ep, "the number was not reused (%d, %d)", ep, ep2);
    ev.data.u64 = 8;
    CHECK(epoll_ctl(ep2, EPOLL_CTL_ADD, s, &ev) == 0, "ADD again: %s", strerror(errno));
    CHECK(echo_pending(s, "reuse"), "no echo");
    struct epoll_event out;
    int n = epoll_wait(ep2, &out, 1, 5000);
    CHECK(n == 1 && out.data.u64 == 8, "epoll_wait gave %d", n);
    close(s);
    close(ep2);
    return 1;
}

/* bind(0.0.0.0), epoll ADD, then connect: no hang-up from the socket the
 * program no longer listens with. */
static int t_bound_any_then_connect(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = { .sin_family = AF_INET };
    CHECK(bind(s, (struct sockaddr *)&any, sizeof any) == 0, "bind: %s", strerror(errno));
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = 3 };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0, "ADD: %s", strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(echo_port), .sin_addr = peer };
    CHECK(connect(s, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, 5000);
    CHECK(n >= 1, "epoll_wait gave %d", n);
    for (int i = 0; i < n; i++)
        CHECK(!(out[i].events & (EPOLLHUP | EPOLLERR)), "events %#x on a live connection",
              out[i].events);
    CHECK(n == 1 && (out[0].events & EPOLLOUT), "%d events, first %#x", n, out[0].events);
    close(s);
    close(ep);
    return 1;
}

/* maxevents = 1 with a level-triggered socket always ready and a readable
 * eventfd: both must be reported over a few calls. */
static int t_epoll_no_starvation(void) {
    int s = echo_conn();
    CHECK(s >= 0, "connect: %s", strerror(errno));
    CHECK(echo_pending(s, "always-ready"), "no echo");
    int efd = eventfd(1, 0), ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    ev.data.u64 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    int seen[3] = { 0 };
    for (int i = 0; i < 10; i++) {
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, 1000) == 1 && out.data.u64 <= 2)
            seen[out.data.u64]++;
    }
    CHECK(seen[1] > 0 && seen[2] > 0, "socket reported %d times, eventfd %d times", seen[1], seen[2]);
    close(s);
    close(efd);
    close(ep);
    return 1;
}

static volatile sig_atomic_t handled;
static void on_usr1(int sig) { (void)sig; handled++; }

struct acceptor { int l, fd, err; };
static void *accept_main(void *arg) {
    struct acceptor *a = arg;
    a->fd = accept(a->l, NULL, NULL);
    a->err = errno;
    return NULL;
}

/* A listener on 0.0.0.0 (rstcp and the kernel), a thread blocked in accept,
 * an SA_RESTART handler: accept goes on and takes the next connection. */
static int t_accept_restarts(void) {
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in any = { .sin_family = AF_INET };
    socklen_t len = sizeof any;
    CHECK(bind(l, (struct sockaddr *)&any, sizeof any) == 0 && listen(l, 4) == 0, "listen: %s",
          strerror(errno));
    CHECK(getsockname(l, (struct sockaddr *)&any, &len) == 0, "getsockname: %s", strerror(errno));
    struct acceptor a = { l, -1, 0 };
    pthread_t th;
    pthread_create(&th, NULL, accept_main, &a);
    usleep(200000);
    pthread_kill(th, SIGUSR1);
    usleep(200000);
    CHECK(handled > 0, "the handler did not run");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = any.sin_port,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(connect(c, (struct sockaddr *)&lo, sizeof lo) == 0, "connect to 127.0.0.1: %s",
          strerror(errno));
    pthread_join(th, NULL);
    CHECK(a.fd >= 0, "accept failed: %s", strerror(a.err));
    close(a.fd);
    close(c);
    close(l);
    return 1;
}

/* select on a descriptor that is not open fails with EBADF. */
static int t_select_ebadf(void) {
    int s = echo_conn();
    CHECK(s >= 0, "connect: %s", strerror(errno));
    int dead = dup(s);
    close(dead);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(s, &r);
    FD_SET(dead, &r);
    struct timeval tv = { 0, 100000 };
    int n = select((s > dead ? s : dead) + 1, &r, NULL, NULL, &tv);
    CHECK(n == -1 && errno == EBADF, "select gave %d (%s)", n, strerror(errno));
    close(s);
    return 1;
}

/* ppoll with the largest timeout on a socket that becomes readable: the
 * data, not a crash. */
static int t_ppoll_huge_timeout(void) {
    int s = echo_conn();
    CHECK(s >= 0, "connect: %s", strerror(errno));
    CHECK(write(s, "huge", 4) == 4, "write: %s", strerror(errno));
    struct pollfd p = { s, POLLIN, 0 };
    struct timespec forever = { LONG_MAX, 0 };
    int n = ppoll(&p, 1, &forever, NULL);
    CHECK(n == 1 && (p.revents & POLLIN), "ppoll gave %d (%#x)", n, p.revents);
    close(s);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || !inet_aton(argv[1], &peer) || (argc > 3 && !inet_aton(argv[3], &own))) {
        fprintf(stderr, "usage: edge <peer_ip> <echo_port> [<own_ip>]\n");
        return 2;
    }
    echo_port = atoi(argv[2]);
    have_own = argc > 3;
    alarm(60);
    signal(SIGPIPE, SIG_IGN);
    run("epoll_dup_del", t_epoll_dup_del);
    run("epoll_number_reused", t_epoll_number_reused);
    run("bound_any_then_connect", t_bound_any_then_connect);
    run("epoll_no_starvation", t_epoll_no_starvation);
    run("accept_restarts_after_sa_restart", t_accept_restarts);
    run("select_ebadf", t_select_ebadf);
    run("ppoll_huge_timeout", t_ppoll_huge_timeout);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
