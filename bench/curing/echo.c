/*
 * echo.c: a small single-threaded io_uring echo server, the completion
 * model's near-limit reference beside cepoll/echo.c (issue 13).
 *
 * One ring (single issuer, deferred task running where the kernel has
 * them), a multishot accept, a multishot receive per client into one
 * provided buffer ring shared by all, and each received buffer sent
 * straight back from where it landed, then recycled once the send
 * completes. The loop hands the kernel every new submission and waits
 * for completions in one io_uring_enter.
 *
 * With URING_ONESHOT=1 each client has one receive armed at a time,
 * armed again after each completion, as the reactor's engine does,
 * instead of a multishot receive.
 *
 * With URING_COOP=1 the ring uses cooperative task running
 * (IORING_SETUP_COOP_TASKRUN with TASKRUN_FLAG, linux 5.19) instead of a
 * single issuer with deferred task running, as the reactor's engine does.
 *
 * With URING_BATCH=1 in the environment it waits for several completions
 * at once: for half as many as the clients that received in this
 * millisecond or the last (at most 128) for at most 100 us (the kernel's
 * minimum wait, linux 6.12), then for any one, so a busy server sleeps
 * and wakes less; with fewer than four such clients it waits for one, so
 * a lone ping-pong client is never held up. Without it, it waits for one.
 * (Counting the last turn's receives instead, as an earlier version did,
 * holds itself at one: a server faster than its clients serves one
 * receive a turn, so it never batched.)
 *
 *   gcc -O2 -o curing echo.c -luring && ./curing [HOST [PORT]]
 *
 * Prints "listening on HOST:PORT", then "pid PID", and exits 0 on SIGINT
 * or SIGTERM. TCP_NODELAY is set on each client, as the reactor sets it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };

#define NBUFS 1024 /* provided buffers, shared by every client */
#define BUFSZ 4096
#define BGID 0

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static int sendoff[NBUFS]; /* bytes of buffer bid already sent */
static int sendlen[NBUFS]; /* bytes of buffer bid to send */
static volatile sig_atomic_t stop;

/* Clients active lately, for a batched wait: those that received in the
 * current millisecond (epoch) and in the one before it. */
#define MAXFD 65536
static uint64_t epoch_of[MAXFD]; /* epoch + 1 of fd's last receive */
static uint64_t epoch;
static unsigned active, prev_active;

static void tick(void) {
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t ep = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
	if (ep != epoch) {
		prev_active = ep == epoch + 1 ? active : 0;
		active = 0;
		epoch = ep;
	}
}

static void received(int fd) {
	if (fd < MAXFD && epoch_of[fd] != epoch + 1) {
		epoch_of[fd] = epoch + 1;
		active++;
	}
}

static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what, int err) {
	fprintf(stderr, "%s: %s\n", what, strerror(err));
	exit(1);
}

static uint64_t tag(int op, int fd, int bid) {
	return (uint64_t)op << 56 | (uint64_t)(uint16_t)bid << 32 | (uint32_t)fd;
}

static struct io_uring_sqe *sqe(void) {
	struct io_uring_sqe *s = io_uring_get_sqe(&ring);
	if (!s) {
		io_uring_submit(&ring);
		s = io_uring_get_sqe(&ring);
		if (!s)
			die("io_uring_get_sqe", EBUSY);
	}
	return s;
}

static void arm_accept(int lfd) {
	struct io_uring_sqe *s = sqe();
	io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(s, tag(OP_ACCEPT, lfd, 0));
}

static int oneshot; /* URING_ONESHOT=1: one receive at a time, as the reactor's engine arms them */

static void arm_recv(int fd) {
	struct io_uring_sqe *s = sqe();
	if (oneshot)
		io_uring_prep_recv(s, fd, NULL, 0, 0);
	else
		io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
	s->flags |= IOSQE_BUFFER_SELECT;
	s->buf_group = BGID;
	io_uring_sqe_set_data64(s, tag(OP_RECV, fd, 0));
}

static void send_buf(int fd, int bid) {
	struct io_uring_sqe *s = sqe();
	io_uring_prep_send(s, fd, bufs + (size_t)bid * BUFSZ + sendoff[bid], (size_t)(sendlen[bid] - sendoff[bid]), 0);
	io_uring_sqe_set_data64(s, tag(OP_SEND, fd, bid));
}

static void recycle(int bid) {
	io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, (unsigned short)bid, io_uring_buf_ring_mask(NBUFS), 0);
	io_uring_buf_ring_advance(br, 1);
}

/* flush_sq publishes the prepared entries (liburing 2.3 keeps its own
 * __io_uring_flush_sq private) and returns how many the kernel has yet to
 * take, so that one io_uring_enter both submits and waits. */
static unsigned flush_sq(void) {
	struct io_uring_sq *sq = &ring.sq;
	unsigned tail = sq->sqe_tail;
	for (unsigned i = sq->sqe_head; i != tail; i++)
		sq->array[i & *sq->kring_mask] = i & *sq->kring_mask;
	sq->sqe_head = tail;
	io_uring_smp_store_release(sq->ktail, tail);
	return tail - io_uring_smp_load_acquire(sq->khead);
}

/* struct io_uring_getevents_arg of linux 6.12, with min_wait_usec. */
struct getevents_arg {
	uint64_t sigmask;
	uint32_t sigmask_sz;
	uint32_t min_wait_usec;
	uint64_t ts;
};

static int enter(unsigned submit, unsigned wait_nr, int batch) {
	if (!batch || wait_nr == 1) /* the minimum wait's timer costs a lone client */
		return (int)syscall(__NR_io_uring_enter, ring.ring_fd, submit, wait_nr, IORING_ENTER_GETEVENTS, NULL, 0);
	struct __kernel_timespec ts = {.tv_sec = 1};
	struct getevents_arg arg = {.sigmask_sz = 8, .min_wait_usec = 100, .ts = (uint64_t)(uintptr_t)&ts};
	return (int)syscall(__NR_io_uring_enter, ring.ring_fd, submit, wait_nr,
			    IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
}

int main(int argc, char **argv) {
	const char *host = argc > 1 ? argv[1] : "127.0.0.1";
	int port = argc > 2 ? atoi(argv[2]) : 0;
	const char *b = getenv("URING_BATCH");
	int batch = b && strcmp(b, "1") == 0;

	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	const char *coop = getenv("URING_COOP");
	const char *os = getenv("URING_ONESHOT");
	oneshot = os && strcmp(os, "1") == 0;
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
	if (coop && strcmp(coop, "1") == 0)
		p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	int err = io_uring_queue_init_params(4096, &ring, &p);
	if (err == -EINVAL) {
		memset(&p, 0, sizeof p);
		err = io_uring_queue_init_params(4096, &ring, &p);
	}
	if (err < 0)
		die("io_uring_queue_init", -err);
	if (batch && !(p.features & (1U << 15)))
		die("URING_BATCH=1 needs IORING_FEAT_MIN_TIMEOUT (linux 6.12)", ENOTSUP);

	if (posix_memalign((void **)&br, 4096, NBUFS * sizeof(struct io_uring_buf)) || posix_memalign((void **)&bufs, 4096, (size_t)NBUFS * BUFSZ))
		die("posix_memalign", ENOMEM);
	io_uring_buf_ring_init(br);
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUFS, .bgid = BGID};
	if ((err = io_uring_register_buf_ring(&ring, &reg, 0)) < 0)
		die("io_uring_register_buf_ring", -err);
	for (int i = 0; i < NBUFS; i++)
		recycle(i);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket", errno);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", host);
		return 2;
	}
	if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("bind", errno);
	if (listen(lfd, 4096) < 0)
		die("listen", errno);
	socklen_t alen = sizeof addr;
	getsockname(lfd, (struct sockaddr *)&addr, &alen);
	printf("listening on %s:%d\npid %d\n", host, ntohs(addr.sin_port), (int)getpid());
	fflush(stdout);

	arm_accept(lfd);
	while (!stop) {
		unsigned wait_nr = 1;
		if (batch) {
			unsigned want = (active > prev_active ? active : prev_active) / 2;
			if (want > 1)
				wait_nr = want > 128 ? 128 : want;
		}
		int r = enter(flush_sq(), wait_nr, batch);
		if (r < 0 && errno != EINTR && errno != ETIME && errno != EBUSY)
			die("io_uring_enter", errno);
		if (batch)
			tick();
		unsigned head, n = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			uint64_t t = cqe->user_data;
			int op = (int)(t >> 56), fd = (int)(uint32_t)t, bid = (int)(uint16_t)(t >> 32);
			switch (op) {
			case OP_ACCEPT:
				if (cqe->res >= 0) {
					setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					arm_recv(cqe->res);
				}
				if (!(cqe->flags & IORING_CQE_F_MORE))
					arm_accept(lfd);
				break;
			case OP_RECV:
				if (cqe->res > 0) {
					if (batch)
						received(fd);
					int got = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
					sendoff[got] = 0;
					sendlen[got] = cqe->res;
					send_buf(fd, got);
					if (!(cqe->flags & IORING_CQE_F_MORE))
						arm_recv(fd);
				} else if (cqe->res == -ENOBUFS) {
					arm_recv(fd); /* every buffer in flight: try again */
				} else {
					if (cqe->flags & IORING_CQE_F_BUFFER)
						recycle((int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
					close(fd); /* end of file or an error */
				}
				break;
			case OP_SEND:
				if (cqe->res > 0 && sendoff[bid] + cqe->res < sendlen[bid]) {
					sendoff[bid] += cqe->res;
					send_buf(fd, bid);
					break;
				}
				recycle(bid);
				break;
			}
		}
		io_uring_cq_advance(&ring, n);
	}
	return 0;
}
