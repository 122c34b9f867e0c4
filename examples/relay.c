// SPDX-License-Identifier: MIT OR Apache-2.0
// A prototyping application in the spirit of the TUN/TAP article's sample program, for
//   tunwire -- ./relay
// tunwire hands it the wire: fd 3 is side A, fd 4 is side B (LISTEN_FDS=2). Each read is one
// packet (an IP packet, or an Ethernet frame with --mode tap) and each write sends one. This
// one is the link's MAC and PHY at their simplest: it copies every packet to the other side
// and says so. Build: cc -O2 -Wall -o relay examples/relay.c
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

int main(void)
{
    struct pollfd fds[2] = { { .fd = 3, .events = POLLIN }, { .fd = 4, .events = POLLIN } };
    static unsigned char buf[65536];
    struct sigaction sa = { .sa_handler = on_stop }; /* tunwire stops us with SIGTERM */

    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (!stop) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n < 0) {
                perror("read");
                return 1;
            }
            printf("read %zd from fd %d\n", n, fds[i].fd);
            if (write(fds[1 - i].fd, buf, (size_t)n) < 0)
                perror("write"); /* the other side is down: drop the packet, as a wire would */
        }
    }
    return 0;
}
