/* Runs a program under a seccomp filter, as systemd's SystemCallFilter= or a
 * container runtime would, for memtap's seccomp tests.
 *
 * Usage: seccomp_launcher MODE[,MODE...] -- ARGV...
 *
 * Each MODE installs one filter (so "errno-memfd,kill-getpid" stacks two),
 * in the order given, then ARGV is exec'ed; filters survive execve and are
 * inherited by every thread the program starts.
 *   kill-memfd   SECCOMP_RET_KILL_PROCESS on memfd_create
 *   errno-memfd  SECCOMP_RET_ERRNO(EPERM) on memfd_create
 *   kill-getpid  SECCOMP_RET_KILL_PROCESS on getpid
 *   allow        a filter that allows everything
 * Every filter allows any other syscall, and checks the arch first (a
 * syscall of another arch, e.g. int 0x80, is allowed: we only care about
 * x86-64 numbers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
install(int nr, unsigned int action) {
    struct sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {sizeof(program) / sizeof(program[0]), program};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog);
}

static int
installMode(const char* mode) {
    if (strcmp(mode, "kill-memfd") == 0) {
        return install(SYS_memfd_create, SECCOMP_RET_KILL_PROCESS);
    }
    if (strcmp(mode, "errno-memfd") == 0) {
        return install(SYS_memfd_create, SECCOMP_RET_ERRNO | EPERM);
    }
    if (strcmp(mode, "kill-getpid") == 0) {
        return install(SYS_getpid, SECCOMP_RET_KILL_PROCESS);
    }
    if (strcmp(mode, "allow") == 0) {
        return install(-1, SECCOMP_RET_ALLOW);
    }
    fprintf(stderr, "seccomp_launcher: unknown mode %s\n", mode);
    errno = EINVAL;
    return -1;
}

int
main(int argc, char** argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: seccomp_launcher MODE[,MODE...] -- ARGV...\n");
        return 2;
    }
    /* Without CAP_SYS_ADMIN a filter needs no_new_privs (seccomp(2)); set it
     * always, as systemd does for SystemCallFilter= in a user service. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("seccomp_launcher: PR_SET_NO_NEW_PRIVS");
        return 1;
    }
    char modes[256];
    snprintf(modes, sizeof(modes), "%s", argv[1]);
    for (char* save = NULL, *mode = strtok_r(modes, ",", &save); mode != NULL;
         mode = strtok_r(NULL, ",", &save)) {
        if (installMode(mode) != 0) {
            perror("seccomp_launcher: seccomp(SECCOMP_SET_MODE_FILTER)");
            return 1;
        }
    }
    execv(argv[3], argv + 3);
    perror("seccomp_launcher: execv");
    return 127;
}
