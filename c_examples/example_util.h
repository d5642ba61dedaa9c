/* Helpers the C examples share: address formatting and complete writes.
 * Header-only so that each example still builds from one .c file. */
#ifndef RSTCP_EXAMPLE_UTIL_H
#define RSTCP_EXAMPLE_UTIL_H

#include <sys/socket.h>
#include "rstcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

/* "a.b.c.d:port" of an IPv4 socket address. */
static inline void format_addr(const struct sockaddr_in *sin, char *out, size_t len)
{
    char ip[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip) == NULL)
        snprintf(ip, sizeof ip, "?");
    snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
}

/* Writes all of buf to a kernel descriptor; returns 0, or -1 with errno set. */
static inline int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sends all of buf on an rstcp socket; returns 0, or -1 with errno set. */
static inline int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = rs_send(fd, buf, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

#endif
