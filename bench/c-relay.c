// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * c-relay: the benchmark's baseline peer, the TUN/TAP article's "sample application".
 * A minimal poll(2) relay between two TUN devices (IFF_TUN | IFF_NO_PI): one read and one
 * write per packet, MTU-sized packets, no offloads. With a third argument it also writes
 * both directions to a classic pcap file (LINKTYPE_RAW), buffered with stdio.
 * It measures what the simplest user-space wire costs; it is not part of tunwire.
 *
 * Usage: c-relay [TUN_A [TUN_B [PCAP_FILE]]]     (defaults: tun0 tun1, no capture)
 * Prints "c-relay ready" on stderr once both TUNs exist; stops on SIGTERM or SIGINT.
 * bench/bench.py builds it with gcc -O2 -Wall -Wextra.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>

#define LINKTYPE_RAW 101

/* Classic pcap headers (host byte order; readers detect it from the magic). */
struct pcap_file_header {
	uint32_t magic;
	uint16_t version_major, version_minor;
	int32_t thiszone;
	uint32_t sigfigs, snaplen, linktype;
};

struct pcap_record_header {
	uint32_t ts_sec, ts_usec, incl_len, orig_len;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Open (creating it if needed) the TUN device `name`; any failure is fatal. */
static int tun_open(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR);

	if (fd < 0) {
		perror("open /dev/net/tun");
		exit(1);
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		exit(1);
	}
	return fd;
}

static void pcap_write_header(FILE *f)
{
	struct pcap_file_header h = {
		.magic = 0xa1b2c3d4, .version_major = 2, .version_minor = 4,
		.snaplen = 65535, .linktype = LINKTYPE_RAW,
	};

	fwrite(&h, sizeof(h), 1, f);
}

static void pcap_write_packet(FILE *f, const unsigned char *pkt, size_t len)
{
	struct timeval tv;
	struct pcap_record_header h;

	gettimeofday(&tv, NULL);
	h.ts_sec = (uint32_t)tv.tv_sec;
	h.ts_usec = (uint32_t)tv.tv_usec;
	h.incl_len = h.orig_len = (uint32_t)len;
	fwrite(&h, sizeof(h), 1, f);
	fwrite(pkt, 1, len, f);
}

int main(int argc, char **argv)
{
	const char *name_a = argc > 1 ? argv[1] : "tun0";
	const char *name_b = argc > 2 ? argv[2] : "tun1";
	const char *pcap_path = argc > 3 ? argv[3] : NULL;
	static unsigned char buf[65536];
	struct sigaction sa;
	struct pollfd pfd[2];
	FILE *pcap = NULL;
	int fd[2];

	if (pcap_path) {
		pcap = fopen(pcap_path, "wb");
		if (!pcap) {
			perror("pcap");
			return 1;
		}
		pcap_write_header(pcap);
	}

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
	fprintf(stderr, "c-relay ready\n");

	while (!stop) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(pfd[i].revents & POLLIN))
				continue;
			n = read(fd[i], buf, sizeof(buf));
			if (n <= 0)
				continue;
			if (pcap)
				pcap_write_packet(pcap, buf, (size_t)n);
			if (write(fd[1 - i], buf, (size_t)n) < 0) {
				/* the other side is down: the packet is dropped */
			}
		}
	}

	if (pcap)
		fclose(pcap);
	return 0;
}
