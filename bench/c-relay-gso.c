// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * c-relay-gso: the benchmark's ceiling probe for offload. The same poll(2) relay as c-relay,
 * but both TUNs are opened with IFF_VNET_HDR (10-byte virtio_net_hdr) and TUNSETOFFLOAD
 * CSUM | TSO4 | TSO6, so the kernel hands over TCP super-packets of up to 64 KiB with partial
 * checksums, and the relay passes them on untouched, header included. One read and one write
 * per packet, up to 64 packets per wake-up per TUN (non-blocking fds). It measures what a
 * simple relay can reach with offload; it is not part of tunwire.
 *
 * Usage: c-relay-gso [TUN_A [TUN_B]]     (defaults: tun0 tun1)
 * Prints nothing once ready (wait for the devices); stops on SIGTERM or SIGINT.
 * bench/bench.py builds it with gcc -O2 -Wall -Wextra.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VNET_HDR_LEN 10 /* struct virtio_net_hdr, without num_buffers */
#define BATCH 64        /* reads per TUN per wake-up */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Open (creating it if needed) the TUN device `name` with GSO offloads; failures are fatal. */
static int tun_open(const char *name)
{
	struct ifreq ifr;
	int hdr_len = VNET_HDR_LEN;
	unsigned int offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);

	if (fd < 0) {
		perror("open /dev/net/tun");
		exit(1);
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		exit(1);
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		perror("VNETHDRSZ");
		exit(1);
	}
	if (ioctl(fd, TUNSETOFFLOAD, offload) < 0) {
		perror("OFFLOAD");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	const char *name_a = argc > 1 ? argv[1] : "tun0";
	const char *name_b = argc > 2 ? argv[2] : "tun1";
	static unsigned char buf[65536 + 64]; /* a 64 KiB packet plus its virtio_net_hdr */
	struct sigaction sa;
	struct pollfd pfd[2];
	int fd[2];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	fd[0] = tun_open(name_a);
	fd[1] = tun_open(name_b);
	for (int i = 0; i < 2; i++) {
		pfd[i].fd = fd[i];
		pfd[i].events = POLLIN;
	}

	while (!stop) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		for (int i = 0; i < 2; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (int k = 0; k < BATCH; k++) {
				ssize_t n = read(fd[i], buf, sizeof(buf));

				if (n <= 0)
					break; /* EAGAIN: drained */
				if (write(fd[1 - i], buf, (size_t)n) < 0) {
					/* the other side is down: the packet is dropped */
				}
			}
		}
	}
	return 0;
}
