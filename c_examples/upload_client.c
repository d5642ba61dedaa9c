/*
 * upload_client — send a file over rstcp and print what the server answers.
 *
 *   upload_client <ip> <port> <file>
 *
 * Connects to <ip>:<port> from the rstcp stack, sends the whole file, shuts
 * down its sending side (the server sees EOF), then reads the server's reply
 * until the server closes and writes it to stdout. A summary goes to stderr:
 *
 *   upload_client: 10.79.0.2:49152 -> 10.79.0.1:9000: sent 2097152 bytes, received 79 bytes
 *
 * Exit status: 0 success, 1 a system or network error (the message names the
 * call and strerror(errno)), 2 usage error.
 */
#include <sys/socket.h>
#include "rstcp.h"
#include "example_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE 65536

static const char *prog = "upload_client";

static void usage(void)
{
    fprintf(stderr, "usage: %s <ip> <port> <file>\n", prog);
    exit(2);
}

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0][0] != '\0')
        prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc != 4)
        usage();

    struct sockaddr_in server;
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
        fprintf(stderr, "%s: not an IPv4 address: '%s'\n", prog, argv[1]);
        usage();
    }
    char *end;
    errno = 0;
    long port = strtol(argv[2], &end, 10);
    if (errno != 0 || end == argv[2] || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "%s: invalid port '%s'\n", prog, argv[2]);
        usage();
    }
    server.sin_port = htons((unsigned short)port);

    signal(SIGPIPE, SIG_IGN);

    int file = open(argv[3], O_RDONLY);
    if (file < 0) {
        fprintf(stderr, "%s: open %s: %s\n", prog, argv[3], strerror(errno));
        return 1;
    }

    int fd = rs_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("socket");
    if (rs_connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
        char dst[INET_ADDRSTRLEN + 8];
        format_addr(&server, dst, sizeof dst);
        fprintf(stderr, "%s: connect %s: %s\n", prog, dst, strerror(errno));
        return 1;
    }
    struct sockaddr_in local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (rs_getsockname(fd, (struct sockaddr *)&local, &local_len) < 0)
        return fail("getsockname");
    if (rs_getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0)
        return fail("getpeername");
    char local_str[INET_ADDRSTRLEN + 8], peer_str[INET_ADDRSTRLEN + 8];
    format_addr(&local, local_str, sizeof local_str);
    format_addr(&peer, peer_str, sizeof peer_str);

    static char buf[BUF_SIZE];
    unsigned long long sent = 0, received = 0;
    for (;;) {
        ssize_t n = read(file, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: read %s: %s\n", prog, argv[3], strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        if (send_all(fd, buf, (size_t)n) < 0)
            return fail("send");
        sent += (unsigned long long)n;
    }
    if (close(file) < 0)
        return fail("close file");
    if (rs_shutdown(fd, SHUT_WR) < 0)
        return fail("shutdown");

    for (;;) {
        ssize_t n = rs_recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("recv");
        }
        if (n == 0)
            break;
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
            return fail("write stdout");
        received += (unsigned long long)n;
    }
    if (rs_close(fd) < 0)
        return fail("close");

    fprintf(stderr, "%s: %s -> %s: sent %llu bytes, received %llu bytes\n", prog, local_str,
            peer_str, sent, received);
    return 0;
}
