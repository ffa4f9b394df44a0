/*
 * fork_signal.c: a process created from a signal handler that interrupted a
 * thread inside malloc.
 *
 * fork() from such a handler cannot be made safe by a malloc that takes its
 * lock in an atfork prepare handler: the handler would wait for the lock its
 * own thread holds. POSIX.1-2024 no longer lists fork among the
 * async-signal-safe functions, and glibc's own malloc hangs there too. What a
 * handler may call is _Fork() (POSIX.1-2024, glibc 2.34): it runs no atfork
 * handlers and takes no lock, and the child may only call
 * async-signal-safe functions before it execs or exits. This program checks
 * that this path works on the malloc under test: a thread allocates and
 * frees without pause, the main thread signals it again and again, its
 * handler calls _Fork(), the child _exits at once and the handler reaps it.
 *
 * A watchdog ends the run after 20 s with "HUNG". Prints one line, the same
 * on any correct malloc.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIGNALS 300

static volatile sig_atomic_t handled, children_ok, stop;

static void on_usr1(int sig)
{
    (void)sig;
    pid_t pid = _Fork();
    if (pid == 0)
        _exit(0); /* the child: nothing but async-signal-safe calls */
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
        children_ok = children_ok + 1;
    handled = handled + 1;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "_Fork from a signal handler: HUNG\n";
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) {
    }
    _exit(1);
}

static void *allocator(void *arg)
{
    (void)arg;
    size_t n = 1;
    while (!stop) {
        char *p = malloc(n);
        if (p != NULL)
            memset(p, 1, n);
        free(p);
        n = n % 5000 + 7;
    }
    return NULL;
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(20);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);

    pthread_t t;
    if (pthread_create(&t, NULL, allocator, NULL) != 0)
        return 2;
    for (int i = 0; i < SIGNALS; i++) {
        int before = handled;
        pthread_kill(t, SIGUSR1);
        while (handled == before)
            usleep(100);
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("_Fork from a handler that interrupted malloc: %d of %d children "
           "exited normally\n",
           (int)children_ok, SIGNALS);
    return children_ok == SIGNALS ? 0 : 1;
}
