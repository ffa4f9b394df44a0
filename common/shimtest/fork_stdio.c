/*
 * fork_stdio.c: fork while other threads are inside stdio and malloc.
 *
 * Three threads, the exact pattern that deadlocks a preloaded malloc whose
 * fork handler takes its lock before stdio's:
 *
 *   reader   getline() in a loop: holds its FILE's lock, and inside it
 *            asks malloc for the line buffer (freed each time, so every
 *            call allocates)
 *   flusher  fflush(NULL) in a loop: holds stdio's list lock and takes
 *            each FILE's lock in turn, the reader's among them
 *   main     fork() in a loop; each child allocates, frees and exits
 *
 * glibc's fork runs the atfork prepare handlers first, then takes stdio's
 * list lock. A malloc whose prepare handler takes the malloc lock therefore
 * waits, holding it, for the list lock (held by the flusher), which waits for
 * the reader's FILE lock, whose holder waits for the malloc lock: a cycle.
 * glibc's own malloc takes its locks after the list lock; a preloaded one
 * must do the same (glibc exports _IO_list_lock for that) or hold no lock
 * across fork.
 *
 * A watchdog ends the run after 20 s: exit 1 with "HUNG". Prints one line;
 * the same on any correct malloc.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 1000

static volatile int stop;

static void *reader(void *arg)
{
    FILE *f = arg;
    char *line = NULL;
    size_t cap = 0;
    while (!stop) {
        if (getline(&line, &cap, f) < 0)
            rewind(f);
        free(line); /* so that the next getline allocates again */
        line = NULL;
        cap = 0;
    }
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!stop)
        fflush(NULL);
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "fork with threads in stdio: HUNG\n";
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) {
    }
    _exit(1);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(20);

    /* A file of a few thousand lines for the reader. */
    FILE *f = tmpfile();
    if (f == NULL)
        return 2;
    for (int i = 0; i < 4000; i++)
        fprintf(f, "line %d of the reader's file, long enough to matter\n", i);
    rewind(f);

    pthread_t r, w;
    if (pthread_create(&r, NULL, reader, f) != 0 ||
        pthread_create(&w, NULL, flusher, NULL) != 0)
        return 2;

    int bad = 0;
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *p = malloc(100 + (size_t)i);
            if (p == NULL)
                _exit(3);
            memset(p, 'c', 100);
            free(p);
            _exit(0);
        }
        if (pid < 0) {
            bad++;
            continue;
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            bad++;
    }
    stop = 1;
    pthread_join(r, NULL);
    pthread_join(w, NULL);
    fclose(f);
    printf("fork with threads in getline and fflush(NULL): %d forks, %s\n",
           FORKS, bad == 0 ? "every child allocated and exited" : "FAILED");
    return bad == 0 ? 0 : 1;
}
