/*
 * notify.c measures how soon a thread other than a ring's submitter
 * learns that a receive on the ring has work to finish: what a Go loop
 * that parks in Go's netpoller (another thread's epoll_wait) would wait
 * for before it runs again. Issue 20 asked whether the completion engine
 * can keep a ring with deferred task running (which needs the loop locked
 * to its thread) and still park in the netpoller when it would wait; this
 * is the answer on the machine it runs on.
 *
 * For each ring kind and each peer, ROUNDS times: the submitter arms one
 * receive, submits it and sleeps on a condition variable (as a parked Go
 * thread sleeps on a futex); a watcher thread waits in epoll_wait on the
 * ring's eventfd (registered with io_uring_register_eventfd) and on the
 * ring's fd; a writer thread sends one byte from the peer's end and notes
 * the time. The figure is the time from that send to the watcher's wake,
 * median and 90th percentile, and which fd woke it.
 *
 *   ring kinds: defer (SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG:
 *               deferred task running, as the C reference server's ring
 *               and UringConfig.Dedicated's have)
 *               coop  (COOP_TASKRUN | TASKRUN_FLAG, the engine's default)
 *   peers:      unix  (a socketpair: the receive is woken in the sender's
 *               system call)
 *               tcp   (TCP over loopback: woken in softirq context)
 *
 *   gcc -O2 -o notify notify.c -luring -lpthread && ./notify [ROUNDS]
 *
 * A wake that does not come within 200 ms counts as 200 ms ("none").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 200

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what, int err) {
	fprintf(stderr, "notify: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* peer returns a connected pair: fds[0] is received on, fds[1] sends. */
static void peer(int tcp, int fds[2]) {
	if (!tcp) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
			die("socketpair", -1);
		return;
	}
	int ln = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t n = sizeof a;
	if (bind(ln, (struct sockaddr *)&a, sizeof a) < 0 || listen(ln, 1) < 0 ||
	    getsockname(ln, (struct sockaddr *)&a, &n) < 0)
		die("listen", -1);
	fds[1] = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fds[1], (struct sockaddr *)&a, sizeof a) < 0)
		die("connect", -1);
	fds[0] = accept(ln, NULL, NULL);
	int one = 1;
	setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	close(ln);
}

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go, quit, watch, woke;
	int sender, ep, fd;
	double sent, at;
} w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* watcher waits in epoll_wait each time it is told to, as Go's netpoller
 * does on its own thread, and reports which fd woke it and when. */
static void *watcher(void *arg) {
	(void)arg;
	pthread_mutex_lock(&w.mu);
	for (;;) {
		while (!w.watch && !w.quit)
			pthread_cond_wait(&w.cv, &w.mu);
		if (w.quit)
			break;
		w.watch = 0;
		int ep = w.ep;
		pthread_mutex_unlock(&w.mu);
		struct epoll_event got;
		int n = epoll_wait(ep, &got, 1, TIMEOUT_MS);
		double t = now();
		pthread_mutex_lock(&w.mu);
		w.at = t;
		w.fd = n > 0 ? (int)got.data.u32 : 0;
		w.woke = 1;
		pthread_cond_broadcast(&w.cv);
	}
	pthread_mutex_unlock(&w.mu);
	return NULL;
}

/* writer sends one byte each time it is told to, 200 us later (the
 * watcher is in epoll_wait by then). */
static void *writer(void *arg) {
	(void)arg;
	pthread_mutex_lock(&w.mu);
	for (;;) {
		while (!w.go && !w.quit)
			pthread_cond_wait(&w.cv, &w.mu);
		if (w.quit)
			break;
		w.go = 0;
		w.watch = 1;
		pthread_cond_broadcast(&w.cv);
		pthread_mutex_unlock(&w.mu);
		usleep(200);
		pthread_mutex_lock(&w.mu);
		w.sent = now();
		pthread_mutex_unlock(&w.mu);
		if (write(w.sender, "x", 1) != 1)
			die("write", -1);
		pthread_mutex_lock(&w.mu);
	}
	pthread_mutex_unlock(&w.mu);
	return NULL;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void run(const char *kind, unsigned flags, int tcp, int rounds) {
	struct io_uring r;
	struct io_uring_params p = {.flags = flags};
	int err = io_uring_queue_init_params(8, &r, &p);
	if (err < 0) {
		printf("%-5s %-4s  not available: %s\n", kind, tcp ? "tcp" : "unix", strerror(-err));
		return;
	}
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if ((err = io_uring_register_eventfd(&r, efd)) < 0)
		die("io_uring_register_eventfd", err);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 1};
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	ev.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, r.ring_fd, &ev);
	int fds[2];
	peer(tcp, fds);
	w.sender = fds[1];
	double *lat = calloc(rounds, sizeof *lat);
	int byfd[3] = {0}, none = 0;
	char buf[64];
	for (int i = 0; i < rounds; i++) {
		struct io_uring_sqe *q = io_uring_get_sqe(&r);
		io_uring_prep_recv(q, fds[0], buf, sizeof buf, 0);
		io_uring_submit(&r);
		uint64_t v;
		while (read(efd, &v, sizeof v) == sizeof v) {
		}
		struct epoll_event old[2];
		while (epoll_wait(ep, old, 2, 0) > 0) { /* drop old edges */
		}
		pthread_mutex_lock(&w.mu);
		w.go = 1;
		w.ep = ep;
		w.woke = 0;
		pthread_cond_broadcast(&w.cv);
		/* The submitter sleeps until the watcher has seen the wake, as
		 * a parked Go thread sleeps on a futex. */
		while (!w.woke)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
		if (w.fd == 0) {
			lat[i] = TIMEOUT_MS * 1e6;
			none++;
		} else {
			lat[i] = w.at - w.sent;
			byfd[w.fd]++;
		}
		struct io_uring_cqe *cqe;
		if ((err = io_uring_wait_cqe(&r, &cqe)) < 0)
			die("io_uring_wait_cqe", err);
		io_uring_cqe_seen(&r, cqe);
	}
	qsort(lat, rounds, sizeof *lat, cmp);
	printf("%-5s %-4s  median %8.1f us  p90 %8.1f us  woken by: eventfd %d, ring fd %d, none %d\n",
	       kind, tcp ? "tcp" : "unix", lat[rounds / 2] / 1e3, lat[rounds * 9 / 10] / 1e3, byfd[1], byfd[2], none);
	free(lat);
	close(fds[0]);
	close(fds[1]);
	close(ep);
	close(efd);
	io_uring_queue_exit(&r);
}

int main(int argc, char **argv) {
	int rounds = argc > 1 ? atoi(argv[1]) : 50;
	if (rounds < 1)
		rounds = 1;
	pthread_t t, u;
	pthread_create(&t, NULL, writer, NULL);
	pthread_create(&u, NULL, watcher, NULL);
	for (int tcp = 0; tcp < 2; tcp++) {
		run("defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG, tcp, rounds);
		run("coop", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, tcp, rounds);
	}
	pthread_mutex_lock(&w.mu);
	w.quit = 1;
	pthread_cond_broadcast(&w.cv);
	pthread_mutex_unlock(&w.mu);
	pthread_join(t, NULL);
	pthread_join(u, NULL);
	return 0;
}
