/*
 * echo.c: a small single-threaded epoll echo server, the baseline that
 * bench/cmd/cpumsg measures the reactor against.
 *
 * Level-triggered epoll, non-blocking sockets, accept4. Each readable
 * client gets one read(2) into a 64 KiB buffer and the bytes are written
 * straight back. What write(2) does not take goes into a per-fd pending
 * buffer; the fd then waits for EPOLLOUT only (no reading) until the buffer
 * drains, which keeps the memory per client bounded by one read.
 *
 *   gcc -O2 -o cepoll echo.c && ./cepoll [HOST [PORT]]
 *
 * Prints "listening on HOST:PORT", then "pid PID", and exits 0 on SIGINT
 * or SIGTERM. TCP_NODELAY is set on each client, as the reactor sets it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct pending {
	char *buf;
	size_t off, len;
};

static struct pending *pend; /* indexed by fd */
static size_t npend;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
	perror(what);
	exit(1);
}

static void watch(int ep, int op, int fd, unsigned events) {
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (epoll_ctl(ep, op, fd, &ev) < 0)
		die("epoll_ctl");
}

static void drop(int ep, int fd) {
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	if ((size_t)fd < npend) {
		free(pend[fd].buf);
		pend[fd] = (struct pending){0};
	}
}

/* queue keeps the n bytes of p that write(2) did not take. */
static void queue(int ep, int fd, const char *p, size_t n) {
	if ((size_t)fd >= npend) {
		size_t size = npend ? 2 * npend : 1024;
		while (size <= (size_t)fd)
			size *= 2;
		pend = realloc(pend, size * sizeof *pend);
		if (!pend)
			die("realloc");
		memset(pend + npend, 0, (size - npend) * sizeof *pend);
		npend = size;
	}
	struct pending *q = &pend[fd];
	q->buf = malloc(n);
	if (!q->buf)
		die("malloc");
	memcpy(q->buf, p, n);
	q->off = 0;
	q->len = n;
	watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
}

/* flush writes pending bytes; -1 on a write error. */
static int flush(int ep, int fd) {
	struct pending *q = &pend[fd];
	while (q->off < q->len) {
		ssize_t w = write(fd, q->buf + q->off, q->len - q->off);
		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		q->off += (size_t)w;
	}
	free(q->buf);
	*q = (struct pending){0};
	watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
	return 0;
}

int main(int argc, char **argv) {
	const char *host = argc > 1 ? argv[1] : "127.0.0.1";
	int port = argc > 2 ? atoi(argv[2]) : 0;
	static char buf[64 << 10];
	struct epoll_event evs[256];

	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", host);
		return 2;
	}
	if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("bind");
	if (listen(lfd, 4096) < 0)
		die("listen");
	socklen_t alen = sizeof addr;
	getsockname(lfd, (struct sockaddr *)&addr, &alen);
	printf("listening on %s:%d\npid %d\n", host, ntohs(addr.sin_port), (int)getpid());
	fflush(stdout);

	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	watch(ep, EPOLL_CTL_ADD, lfd, EPOLLIN);

	while (!stop) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			unsigned ev = evs[i].events;
			if (fd == lfd) {
				for (int k = 0; k < 64; k++) {
					int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (c < 0)
						break;
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
				}
				continue;
			}
			if ((size_t)fd < npend && pend[fd].buf) {
				if (flush(ep, fd) < 0)
					drop(ep, fd);
				continue;
			}
			if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			ssize_t r = read(fd, buf, sizeof buf);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				drop(ep, fd);
				continue;
			}
			if (r < 0)
				continue;
			ssize_t w = write(fd, buf, (size_t)r);
			if (w < 0) {
				if (errno != EAGAIN && errno != EINTR) {
					drop(ep, fd);
					continue;
				}
				w = 0;
			}
			if (w < r)
				queue(ep, fd, buf + w, (size_t)(r - w));
		}
	}
	return 0;
}
