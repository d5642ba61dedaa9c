/*
 * http_get — fetch one URL path over HTTP/1.0 on rstcp.
 *
 *   http_get <ip> <port> <path>
 *
 * Sends "GET <path> HTTP/1.0", writes the response body to stdout and the
 * status line (plus a short summary) to stderr.
 *
 * Exit status:
 *   0  status 200, and the body is as long as Content-Length says (if sent)
 *   1  a system or network error (the message names the call and errno)
 *   2  usage error
 *   3  a response that is not HTTP, or a status other than 200
 *   4  the body is shorter or longer than Content-Length
 */
#include <sys/socket.h>
#include "rstcp.h"
#include "example_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define MAX_HEADER 65536

static const char *prog = "http_get";

static void usage(void)
{
    fprintf(stderr, "usage: %s <ip> <port> <path>\n", prog);
    exit(2);
}

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    return 1;
}

/* rs_recv, retried on EINTR. */
static ssize_t recv_some(int fd, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = rs_recv(fd, buf, len, 0);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

/* Finds the end of the header block ("\r\n\r\n" or "\n\n"); returns the
 * offset of the first body byte, or 0 if the block is not complete yet. */
static size_t header_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n')
            return i + 2;
        if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    }
    return 0;
}

/* The value of Content-Length in the header block, or -1 if absent/invalid. */
static long long content_length(char *headers)
{
    for (char *line = strchr(headers, '\n'); line != NULL; line = strchr(line, '\n')) {
        line++;
        if (strncasecmp(line, "Content-Length:", 15) == 0) {
            char *end;
            errno = 0;
            long long v = strtoll(line + 15, &end, 10);
            if (errno != 0 || end == line + 15 || v < 0)
                return -1;
            return v;
        }
    }
    return -1;
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
    const char *path = argv[3];
    if (path[0] != '/' || strpbrk(path, " \r\n") != NULL) {
        fprintf(stderr, "%s: path must start with '/' and have no spaces or newlines: '%s'\n",
                prog, path);
        usage();
    }

    signal(SIGPIPE, SIG_IGN);

    static char request[8192];
    int req_len = snprintf(request, sizeof request,
                           "GET %s HTTP/1.0\r\n"
                           "Host: %s:%ld\r\n"
                           "User-Agent: rstcp-http_get/0.1\r\n"
                           "Accept: */*\r\n"
                           "\r\n",
                           path, argv[1], port);
    if (req_len < 0 || (size_t)req_len >= sizeof request) {
        fprintf(stderr, "%s: path too long\n", prog);
        return 2;
    }

    int fd = rs_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("socket");
    if (rs_connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
        fprintf(stderr, "%s: connect %s:%ld: %s\n", prog, argv[1], port, strerror(errno));
        return 1;
    }
    if (send_all(fd, request, (size_t)req_len) < 0)
        return fail("send");

    /* Read until the header block is complete. */
    static char head[MAX_HEADER + 1];
    size_t have = 0, body_start = 0;
    while (body_start == 0) {
        if (have == MAX_HEADER) {
            fprintf(stderr, "%s: response header longer than %d bytes\n", prog, MAX_HEADER);
            return 3;
        }
        ssize_t n = recv_some(fd, head + have, MAX_HEADER - have);
        if (n < 0)
            return fail("recv");
        if (n == 0) {
            fprintf(stderr, "%s: connection closed before the end of the response header "
                            "(%zu bytes received)\n", prog, have);
            return 3;
        }
        have += (size_t)n;
        body_start = header_end(head, have);
    }

    /* The status line. */
    size_t status_len = strcspn(head, "\r\n");
    if (status_len > have)
        status_len = have;
    fprintf(stderr, "%.*s\n", (int)status_len, head);
    int major, minor, code;
    if (sscanf(head, "HTTP/%d.%d %d", &major, &minor, &code) != 3) {
        fprintf(stderr, "%s: not an HTTP response\n", prog);
        return 3;
    }

    char saved = head[body_start];
    head[body_start] = '\0';
    long long expected = content_length(head);
    head[body_start] = saved;

    /* The body: what came with the header, then the rest until EOF. */
    unsigned long long body = have - body_start;
    if (write_all(STDOUT_FILENO, head + body_start, have - body_start) < 0)
        return fail("write stdout");
    static char buf[BUF_SIZE];
    for (;;) {
        ssize_t n = recv_some(fd, buf, sizeof buf);
        if (n < 0)
            return fail("recv");
        if (n == 0)
            break;
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
            return fail("write stdout");
        body += (unsigned long long)n;
    }
    if (rs_close(fd) < 0)
        return fail("close");

    fprintf(stderr, "%s: %llu body bytes", prog, body);
    if (expected >= 0)
        fprintf(stderr, " (Content-Length %lld)", expected);
    fprintf(stderr, "\n");

    if (code != 200)
        return 3;
    if (expected >= 0 && (unsigned long long)expected != body) {
        fprintf(stderr, "%s: body length %llu differs from Content-Length %lld\n", prog, body,
                expected);
        return 4;
    }
    return 0;
}
