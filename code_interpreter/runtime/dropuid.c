/*
 * sandbox-dropuid UID GID COMMAND [ARG...]
 *
 * Under a root-run service the sandbox starts as root (see code_interpreter/sandbox_command.py);
 * this drops it to the session's uid and gid, with no groups and no capabilities of any kind
 * (effective, permitted, inheritable, ambient, bounding), then runs COMMAND. It does what
 * `setpriv --reuid --regid --clear-groups --inh-caps=-all --bounding-set=-all` does, in a
 * static binary that starts in a fraction of the time. scripts/install-sandbox.sh builds it;
 * without it the sandbox uses setpriv.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fail(const char *what)
{
    fprintf(stderr, "sandbox-dropuid: %s: %s\n", what, strerror(errno));
    exit(126);
}

static unsigned long parse_id(const char *text)
{
    char *end;
    errno = 0;
    unsigned long id = strtoul(text, &end, 10);
    if (errno != 0 || *text == '\0' || *end != '\0' || id == 0 || id > 0xFFFFFFFEUL) {
        fprintf(stderr, "sandbox-dropuid: not a non-root id: %s\n", text);
        exit(126);
    }
    return id;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sandbox-dropuid UID GID COMMAND [ARG...]\n");
        return 126;
    }
    uid_t uid = (uid_t)parse_id(argv[1]);
    gid_t gid = (gid_t)parse_id(argv[2]);

    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            fail("dropping the bounding set");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        fail("clearing ambient capabilities");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail("setting no_new_privs");
    if (setgroups(0, NULL) < 0)
        fail("setgroups");
    if (setresgid(gid, gid, gid) < 0)
        fail("setresgid");
    if (setresuid(uid, uid, uid) < 0)
        fail("setresuid");

    /* Leaving root cleared the effective and permitted sets; clear the inheritable one too. */
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0)
        fail("capset");
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
        fail("uid check");

    execvp(argv[3], argv + 3);
    fprintf(stderr, "sandbox-dropuid: %s: %s\n", argv[3], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
