/*
 * echo.c: a small single-threaded C UDP echo server, the datagram
 * reference beside cepoll/echo.c: level-triggered epoll on one
 * non-blocking socket, every datagram sent back to its sender.
 *
 * By default it moves up to 64 datagrams per system call each way,
 * recvmmsg and sendmmsg (the floor); with UDP_ONE=1 in the environment,
 * one recvfrom and one sendto per datagram, as most servers are written.
 * A datagram the kernel cannot send at once (EAGAIN) is dropped: UDP
 * promises nothing more, and on loopback it does not happen.
 *
 *   gcc -O2 -o cudp echo.c && ./cudp [HOST [PORT]]
 *
 * Prints "listening on HOST:PORT", then "pid PID"; exits 0 on SIGINT or
 * SIGTERM. Its receive and send buffers are 4 MiB (UDP_BUF bytes if set).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAXDG 65536

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
	perror(what);
	exit(1);
}

int main(int argc, char **argv) {
	const char *host = argc > 1 ? argv[1] : "127.0.0.1";
	int port = argc > 2 ? atoi(argv[2]) : 0;
	const char *one = getenv("UDP_ONE");
	int single = one && strcmp(one, "1") == 0;
	const char *bufenv = getenv("UDP_BUF");
	int bufsz = bufenv ? atoi(bufenv) : 4 << 20;

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", host);
		return 2;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("bind");
	socklen_t alen = sizeof addr;
	getsockname(fd, (struct sockaddr *)&addr, &alen);
	printf("listening on %s:%d\npid %d\n", host, ntohs(addr.sin_port), (int)getpid());
	fflush(stdout);

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll");

	static char bufs[BATCH][MAXDG];
	static struct mmsghdr msgs[BATCH];
	static struct iovec iovs[BATCH];
	static struct sockaddr_in6 names[BATCH];
	while (!stop) {
		struct epoll_event got;
		int n = epoll_wait(ep, &got, 1, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (;;) {
			if (single) {
				struct sockaddr_in6 from;
				socklen_t flen = sizeof from;
				ssize_t k = recvfrom(fd, bufs[0], MAXDG, 0, (struct sockaddr *)&from, &flen);
				if (k < 0)
					break;
				sendto(fd, bufs[0], (size_t)k, 0, (struct sockaddr *)&from, flen);
				continue;
			}
			for (int i = 0; i < BATCH; i++) {
				iovs[i].iov_base = bufs[i];
				iovs[i].iov_len = MAXDG;
				msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_namelen = sizeof names[i], .msg_iov = &iovs[i], .msg_iovlen = 1};
			}
			int k = recvmmsg(fd, msgs, BATCH, 0, NULL);
			if (k <= 0)
				break;
			for (int i = 0; i < k; i++)
				iovs[i].iov_len = msgs[i].msg_len;
			for (int sent = 0; sent < k;) {
				int m = sendmmsg(fd, msgs + sent, (unsigned)(k - sent), 0);
				if (m <= 0)
					break; /* EAGAIN: dropped */
				sent += m;
			}
			if (k < BATCH)
				break;
		}
	}
	return 0;
}
