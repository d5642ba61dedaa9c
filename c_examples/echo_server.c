/*
 * echo_server — a TCP echo server on rstcp, one thread per connection.
 *
 *   echo_server <port> [max_conns]
 *
 * Listens on 0.0.0.0:<port> of the rstcp stack (its address comes from
 * RSTCP_ADDR, default 10.77.0.2/24, on the TUN device RSTCP_TUN, default
 * rstcp0). Every connection gets its bytes back until the peer half-closes;
 * then the server closes it and prints one line:
 *
 *   conn 1 10.77.0.1:40312: echoed 4096 bytes
 *
 * With max_conns, it accepts that many connections, waits for all of them
 * to finish and exits: 0 if every connection ended cleanly, 1 otherwise.
 * Without it, it serves until killed. Exit 2 is a usage error.
 */
#include <sys/socket.h>
#include "rstcp.h"
#include "example_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE 65536

struct conn {
    int fd;
    unsigned long id;
    char peer[INET_ADDRSTRLEN + 8];
    pthread_t thread;
    int detached; /* nobody joins: the thread frees its own struct */
    int failed;
};

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s <port> [max_conns]\n", prog);
    exit(2);
}

static long parse_number(const char *s, long min, long max, const char *what, const char *prog)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s: invalid %s '%s' (expected %ld..%ld)\n", prog, what, s, min, max);
        usage(prog);
    }
    return v;
}

static void *serve(void *arg)
{
    struct conn *c = arg;
    char buf[BUF_SIZE];
    unsigned long long echoed = 0;

    for (;;) {
        ssize_t n = rs_recv(c->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "conn %lu %s: recv: %s\n", c->id, c->peer, strerror(errno));
            c->failed = 1;
            break;
        }
        if (n == 0)
            break; /* the peer half-closed: everything it sent has been echoed */
        if (send_all(c->fd, buf, (size_t)n) < 0) {
            fprintf(stderr, "conn %lu %s: send: %s\n", c->id, c->peer, strerror(errno));
            c->failed = 1;
            break;
        }
        echoed += (unsigned long long)n;
    }
    if (rs_close(c->fd) < 0) {
        fprintf(stderr, "conn %lu %s: close: %s\n", c->id, c->peer, strerror(errno));
        c->failed = 1;
    }
    printf("conn %lu %s: echoed %llu bytes%s\n", c->id, c->peer, echoed,
           c->failed ? " (error)" : "");
    if (c->detached)
        free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *prog = "echo_server";
    if (argc > 0 && argv[0][0] != '\0')
        prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc < 2 || argc > 3)
        usage(prog);
    unsigned short port = (unsigned short)parse_number(argv[1], 1, 65535, "port", prog);
    long max_conns = argc == 3 ? parse_number(argv[2], 1, INT_MAX, "max_conns", prog) : 0;

    /* One line per connection, also when stdout is a file or a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* rstcp reports a broken connection as EPIPE; ignore SIGPIPE in any case. */
    signal(SIGPIPE, SIG_IGN);

    int lfd = rs_socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
        return 1;
    }
    int one = 1;
    if (rs_setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        fprintf(stderr, "%s: warning: setsockopt(SO_REUSEADDR): %s\n", prog, strerror(errno));

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(port);
    if (rs_bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "%s: bind port %u: %s\n", prog, (unsigned)port, strerror(errno));
        return 1;
    }
    if (rs_listen(lfd, 16) < 0) {
        fprintf(stderr, "%s: listen: %s\n", prog, strerror(errno));
        return 1;
    }
    struct sockaddr_in local;
    socklen_t local_len = sizeof local;
    if (rs_getsockname(lfd, (struct sockaddr *)&local, &local_len) < 0) {
        fprintf(stderr, "%s: getsockname: %s\n", prog, strerror(errno));
        return 1;
    }
    char local_str[INET_ADDRSTRLEN + 8];
    format_addr(&local, local_str, sizeof local_str);
    printf("listening on %s\n", local_str);

    struct conn **conns = NULL;
    size_t nconns = 0, cap = 0;
    unsigned long accepted = 0;
    int status = 0;

    while (max_conns == 0 || (long)accepted < max_conns) {
        struct sockaddr_in peer;
        socklen_t peer_len = sizeof peer;
        int fd = rs_accept(lfd, (struct sockaddr *)&peer, &peer_len);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
            status = 1;
            break;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            fprintf(stderr, "%s: out of memory\n", prog);
            rs_close(fd);
            status = 1;
            break;
        }
        c->fd = fd;
        c->id = ++accepted;
        c->detached = max_conns == 0;
        format_addr(&peer, c->peer, sizeof c->peer);
        if (max_conns != 0 && nconns == cap) {
            cap = cap ? cap * 2 : 16;
            struct conn **grown = realloc(conns, cap * sizeof *conns);
            if (grown == NULL) {
                fprintf(stderr, "%s: out of memory\n", prog);
                rs_close(fd);
                free(c);
                status = 1;
                break;
            }
            conns = grown;
        }
        pthread_attr_t attr;
        pthread_t tid;
        int err = pthread_attr_init(&attr);
        if (err == 0 && c->detached)
            err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (err == 0) {
            err = pthread_create(&tid, &attr, serve, c);
            pthread_attr_destroy(&attr);
        }
        if (err != 0) {
            fprintf(stderr, "%s: pthread_create: %s\n", prog, strerror(err));
            rs_close(fd);
            free(c);
            status = 1;
            break;
        }
        if (max_conns != 0) {
            c->thread = tid;
            conns[nconns++] = c;
        } /* else c belongs to its thread now and may be freed already */
    }

    for (size_t i = 0; i < nconns; i++) {
        int err = pthread_join(conns[i]->thread, NULL);
        if (err != 0) {
            fprintf(stderr, "%s: pthread_join: %s\n", prog, strerror(err));
            status = 1;
        } else if (conns[i]->failed) {
            status = 1;
        }
        free(conns[i]);
    }
    free(conns);

    if (rs_close(lfd) < 0) {
        fprintf(stderr, "%s: close: %s\n", prog, strerror(errno));
        status = 1;
    }
    printf("served %lu connection%s, %s\n", accepted, accepted == 1 ? "" : "s",
           status == 0 ? "all clean" : "with errors");
    return status;
}
