/*
 * python3 / python in the sandbox (the runtime's venv/bin/python3 and venv/bin/python).
 *
 * When a preloaded zygote listens on $SANDBOX_PY_ZYGOTE (code_interpreter/runtime/zygote.py),
 * the invocation runs as a fork of it: this client sends its argv, environment, working
 * directory, umask, nice value, resource limits, signal dispositions and mask, process name and
 * every inherited fd (SCM_RIGHTS), forwards the signals it receives to the child, and exits
 * with the child's status (re-raising the same signal for a signal death). Otherwise (no
 * zygote, a refused or slow connection, an invocation the zygote cannot serve faithfully) it
 * execs the real interpreter with the same argv and environment at once, so a cold sandbox
 * behaves as before. The wire format is code_interpreter/runtime/zygote_wire.py's.
 *
 * The real interpreter is .real/<own name> beside this binary (a link to python3.11 named as we
 * are, so the process keeps its name), else REAL_PYTHON.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef REAL_PYTHON
#define REAL_PYTHON "/opt/runtime/venv/bin/python3.11"
#endif
#define SOCKET_ENV "SANDBOX_PY_ZYGOTE"
#define MAX_FDS 250            /* SCM_RIGHTS carries 253 at most: ours plus the cwd */
#define REPLY_TIMEOUT_MS 5000  /* no "started" by then: start the real interpreter */

enum { KIND_PYTHON = 1, KIND_FALLBACK = 11, KIND_STARTED = 12, KIND_ENDED = 13 };

struct header {
    char magic[4];
    uint32_t kind;
    int32_t value;
    uint32_t length;
};

struct buffer {
    char *data;
    size_t size, capacity;
};

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};

static char **arguments;
static sigset_t caller_mask;
static char real_python[PATH_MAX];

static void exec_real(void)
{
    sigprocmask(SIG_SETMASK, &caller_mask, NULL);
    execv(real_python, arguments);
    int error = errno;
    fprintf(stderr, "python3: cannot run %s: %s\n", real_python, strerror(error));
    _exit(error == ENOENT ? 127 : 126);
}

static void find_real_python(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            int length = snprintf(real_python, sizeof real_python, "%s/.real/%s", self, slash + 1);
            if (length > 0 && (size_t)length < sizeof real_python && access(real_python, X_OK) == 0)
                return;
        }
    }
    snprintf(real_python, sizeof real_python, "%s", REAL_PYTHON);
}

static void put(struct buffer *buffer, const void *data, size_t size)
{
    if (buffer->size + size > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 4096;
        while (capacity < buffer->size + size)
            capacity *= 2;
        char *grown = realloc(buffer->data, capacity);
        if (grown == NULL)
            exec_real();
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, data, size);
    buffer->size += size;
}

#define PUT(buffer, value)                          \
    do {                                            \
        __typeof__(value) put_value_ = (value);     \
        put((buffer), &put_value_, sizeof put_value_); \
    } while (0)

/* The fds this process inherited (none is close-on-exec: exec closed those). */
static int inherited_fds(int *fds)
{
    int count = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        int fd = atoi(entry->d_name);
        if (fd == dirfd(dir) || fcntl(fd, F_GETFD) < 0)
            continue;
        if (count == MAX_FDS) {
            count = -1;
            break;
        }
        fds[count++] = fd;
    }
    closedir(dir);
    return count;
}

static void build_request(struct buffer *payload, int argc, char **argv, const int *fds, int nfds)
{
    mode_t mask = umask(0);
    umask(mask);
    errno = 0;
    int nice_value = getpriority(PRIO_PROCESS, 0);
    uint64_t ignored = 0, blocked = 0;
    for (int sig = 1; sig <= 64; sig++) {
        struct sigaction action;
        if (sigaction(sig, NULL, &action) == 0 && action.sa_handler == SIG_IGN)
            ignored |= 1ULL << (sig - 1);
        if (sigismember(&caller_mask, sig) == 1)
            blocked |= 1ULL << (sig - 1);
    }
    struct stat real;
    if (stat(real_python, &real) != 0)
        exec_real();
    char name[16] = {0};
    prctl(PR_GET_NAME, name, 0, 0, 0);

    PUT(payload, (uint32_t)mask);
    PUT(payload, (int32_t)nice_value);
    PUT(payload, ignored);
    PUT(payload, blocked);
    PUT(payload, (uint64_t)real.st_dev);
    PUT(payload, (uint64_t)real.st_ino);
    put(payload, name, sizeof name);
    PUT(payload, (uint32_t)RLIM_NLIMITS);
    PUT(payload, (uint32_t)nfds);
    for (int resource = 0; resource < RLIM_NLIMITS; resource++) {
        struct rlimit limit = {RLIM_INFINITY, RLIM_INFINITY};
        getrlimit(resource, &limit);
        PUT(payload, (uint64_t)limit.rlim_cur);
        PUT(payload, (uint64_t)limit.rlim_max);
    }
    for (int i = 0; i < nfds; i++)
        PUT(payload, (int32_t)fds[i]);
    int envc = 0;
    for (char **entry = environ; *entry != NULL; entry++)
        envc++;
    PUT(payload, (uint32_t)argc);
    PUT(payload, (uint32_t)envc);
    for (int i = 0; i < argc; i++)
        put(payload, argv[i], strlen(argv[i]) + 1);
    for (char **entry = environ; *entry != NULL; entry++)
        put(payload, *entry, strlen(*entry) + 1);
}

/* The header and payload in one message, the fds riding on its first byte. */
static int send_request(int sock, struct buffer *message, const int *fds, int nfds)
{
    char control[CMSG_SPACE(sizeof(int) * (MAX_FDS + 1))];
    memset(control, 0, sizeof control);
    struct iovec iov = {message->data, message->size};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * nfds)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (sent < 0)
        return -1;
    for (size_t done = sent; done < message->size; done += sent) {
        sent = send(sock, message->data + done, message->size - done, MSG_NOSIGNAL);
        if (sent <= 0)
            return -1;
    }
    return 0;
}

/* One reply: its kind and value, and the pidfd of a "started" (-1 otherwise). */
static int receive_reply(int sock, struct header *reply, int *pidfd)
{
    char control[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {reply, sizeof *reply};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof control};
    ssize_t got = recvmsg(sock, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    *pidfd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *received = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*pidfd < 0)
                *pidfd = received[i];
            else
                close(received[i]);
        }
    }
    if (got != (ssize_t)sizeof *reply || memcmp(reply->magic, "PYZ1", 4) != 0)
        return -1;
    char skip[256]; /* replies to python3 carry no payload; drain any */
    for (uint32_t left = reply->length; left > 0;) {
        ssize_t n = recv(sock, skip, left < sizeof skip ? left : sizeof skip, 0);
        if (n <= 0)
            return -1;
        left -= n;
    }
    return 0;
}

static void exit_like(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core); /* the child's core, if any, was its own */
        signal(sig, SIG_DFL);
        sigset_t only;
        sigemptyset(&only);
        sigaddset(&only, sig);
        sigprocmask(SIG_UNBLOCK, &only, NULL);
        raise(sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000LL + now.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    arguments = argv;
    sigprocmask(SIG_SETMASK, NULL, &caller_mask);
    find_real_python();
    const char *path = getenv(SOCKET_ENV);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (argc < 1 || path == NULL || *path == '\0' || strlen(path) >= sizeof address.sun_path)
        exec_real();
    strcpy(address.sun_path, path);

    int fds[MAX_FDS + 1];
    int nfds = inherited_fds(fds + 1);
    if (nfds < 0)
        exec_real();
    fds[0] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fds[0] < 0)
        exec_real();
    struct buffer message = {0};
    struct header header = {{'P', 'Y', 'Z', '1'}, KIND_PYTHON, 0, 0};
    put(&message, &header, sizeof header);
    build_request(&message, argc, argv, fds + 1, nfds);
    ((struct header *)message.data)->length = message.size - sizeof header;

    /* Non-blocking connect: a full backlog (a stuck zygote) means a real start, not a wait. */
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&address, sizeof address) < 0)
        exec_real();
    fcntl(sock, F_SETFL, 0);
    struct timeval send_timeout = {REPLY_TIMEOUT_MS / 1000, 0};
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);

    sigset_t forward_set;
    sigemptyset(&forward_set);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&forward_set, forwarded[i]);
    sigprocmask(SIG_BLOCK, &forward_set, NULL);
    int signals = signalfd(-1, &forward_set, SFD_CLOEXEC);
    if (signals < 0 || send_request(sock, &message, fds, nfds + 1) < 0)
        exec_real();
    close(fds[0]);
    free(message.data);

    int pidfd = -1;
    uint64_t pending = 0; /* signals received before the child existed */
    long long deadline = now_ms() + REPLY_TIMEOUT_MS;
    for (;;) {
        struct pollfd polled[2] = {{sock, POLLIN, 0}, {signals, POLLIN, 0}};
        int timeout = -1;
        if (pidfd < 0) {
            long long left = deadline - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int ready = poll(polled, 2, timeout);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0 && pidfd < 0)
            exec_real(); /* the zygote never answered; nothing of ours has run */
        if (polled[1].revents & POLLIN) {
            struct signalfd_siginfo info;
            if (read(signals, &info, sizeof info) == sizeof info) {
                if (pidfd >= 0)
                    syscall(SYS_pidfd_send_signal, pidfd, info.ssi_signo, NULL, 0);
                else
                    pending |= 1ULL << (info.ssi_signo - 1);
            }
        }
        if (!(polled[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        struct header reply;
        int received_fd;
        if (receive_reply(sock, &reply, &received_fd) < 0) {
            if (pidfd < 0)
                exec_real(); /* the child never started the code */
            /* The zygote and the child's own report are gone: wait for the child to end. */
            struct pollfd child = {pidfd, POLLIN, 0};
            while (poll(&child, 1, -1) < 0 && errno == EINTR)
                ;
            fprintf(stderr, "python3: the preloaded interpreter's exit status was lost\n");
            _exit(1);
        }
        if (reply.kind == KIND_FALLBACK && pidfd < 0)
            exec_real();
        if (reply.kind == KIND_STARTED && pidfd < 0 && received_fd >= 0) {
            pidfd = received_fd;
            char go = 'G';
            if (send(sock, &go, 1, MSG_NOSIGNAL) != 1)
                exec_real();
            for (int sig = 1; sig <= 64; sig++)
                if (pending & (1ULL << (sig - 1)))
                    syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
            continue;
        }
        if (received_fd >= 0)
            close(received_fd);
        if (reply.kind == KIND_ENDED) {
            if (pidfd < 0)
                exec_real(); /* it died before the code ran: run it for real */
            exit_like(reply.value);
        }
    }
}
