/*
 * wake.c measures what one sleep and wake costs on this machine: two
 * threads, pinned to two CPUs, take turns through a pair of eventfds.
 * Each blocks in read(2) until the other writes, so every turn is one
 * thread going to sleep and being woken from the other CPU, which is what
 * an event loop pays when it waits for a client's next message.
 *
 *     wake SLEEPER_CPU WAKER_CPU [ROUNDS]
 *
 * It prints one line: the round trip (two wakes) and the CPU time the
 * sleeper's thread spends per sleep and wake (its read and the kernel's
 * scheduling work on its CPU), both medians of 5 runs of ROUNDS turns.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int to_sleeper, to_waker, rounds;

static void pin(int cpu) {
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
		perror("pthread_setaffinity_np");
		exit(1);
	}
}

static double now(clockid_t c) {
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void must(ssize_t n) {
	if (n != 8) {
		perror("eventfd");
		exit(1);
	}
}

static int waker_cpu;

static void *waker(void *arg) {
	(void)arg;
	pin(waker_cpu);
	uint64_t v = 1;
	for (int i = 0; i < rounds; i++) {
		must(write(to_sleeper, &v, 8));
		must(read(to_waker, &v, 8));
	}
	return NULL;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: wake SLEEPER_CPU WAKER_CPU [ROUNDS]\n");
		return 2;
	}
	int sleeper_cpu = atoi(argv[1]);
	waker_cpu = atoi(argv[2]);
	rounds = argc > 3 ? atoi(argv[3]) : 20000;
	pin(sleeper_cpu);
	double rt[5], cpu[5];
	for (int run = 0; run < 5; run++) {
		to_sleeper = eventfd(0, EFD_CLOEXEC);
		to_waker = eventfd(0, EFD_CLOEXEC);
		pthread_t t;
		double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
		pthread_create(&t, NULL, waker, NULL);
		uint64_t v = 1;
		for (int i = 0; i < rounds; i++) {
			must(read(to_sleeper, &v, 8));
			must(write(to_waker, &v, 8));
		}
		pthread_join(t, NULL);
		rt[run] = (now(CLOCK_MONOTONIC) - w0) / rounds / 1e3;
		cpu[run] = (now(CLOCK_THREAD_CPUTIME_ID) - c0) / rounds / 1e3;
		close(to_sleeper);
		close(to_waker);
	}
	qsort(rt, 5, sizeof rt[0], cmp);
	qsort(cpu, 5, sizeof cpu[0], cmp);
	printf("sleep and wake across CPUs %d and %d: round trip %.1f us, %.2f us CPU per sleep and wake on CPU %d (medians of 5 x %d)\n",
	       sleeper_cpu, waker_cpu, rt[2], cpu[2], sleeper_cpu, rounds);
	return 0;
}
