/*
 * orc's in-container isolation probe. Prints one "key=value" line per check.
 *
 * It makes privileged syscalls (mount, sethostname, reboot with a bad magic, ...) that must fail
 * inside a container, so it refuses to run unless it is inside fresh namespaces: it must be PID 1,
 * or a child of PID 1 in a pid namespace showing at most 8 processes, and its pid, mount and UTS
 * namespaces must differ from the host's, whose inode numbers the caller passes as arguments:
 *
 *   probe <host pid-ns inode> <host mnt-ns inode> <host uts-ns inode> <disk major> <disk minor> <host marker path>
 *
 * Even where a call would succeed, the arguments are chosen to change nothing on a host.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int process_count(int *max_pid) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    *max_pid = 0;
    if (!d) return -1;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > 0) {
            n++;
            if (pid > *max_pid) *max_pid = pid;
        }
    }
    closedir(d);
    return n;
}

static unsigned long ns_inode(const char *kind) {
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/self/ns/%s", kind);
    if (stat(path, &st) != 0) return 0;
    return (unsigned long)st.st_ino;
}

static void result(const char *name, long rc) {
    if (rc == -1)
        printf("%s=%s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    else
        printf("%s=OK\n", name);
}

static void status_field(const char *field, const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t len = strlen(field);
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            char *v = line + len + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            printf("%s=%s\n", key, v);
        }
    }
    fclose(f);
}

static void file_size(const char *name, const char *path) {
    char buf[4096];
    long total = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s=%s\n", name, strerrorname_np(errno));
        return;
    }
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
    printf("%s=%s\n", name, total == 0 ? "empty" : "VISIBLE");
}

static void dir_entries(const char *name, const char *path) {
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d) {
        printf("%s=%s\n", name, strerrorname_np(errno));
        return;
    }
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    printf("%s=%s\n", name, n == 0 ? "empty" : "VISIBLE");
}

static void read_only(const char *name, const char *path) {
    struct statvfs sv;
    if (statvfs(path, &sv) != 0) {
        printf("%s=%s\n", name, strerrorname_np(errno));
        return;
    }
    printf("%s=%s\n", name, (sv.f_flag & ST_RDONLY) ? "ro" : "RW");
}

int main(int argc, char **argv) {
    int max_pid, count;
    char hostname[256];
    struct stat before, after;
    if (argc != 7) {
        fprintf(stderr, "refused: usage: probe <pidns> <mntns> <utsns> <disk major> <disk minor> <marker>\n");
        return 2;
    }
    count = process_count(&max_pid);
    if (!(getpid() == 1 || (getppid() == 1 && count >= 1 && count <= 8))) {
        fprintf(stderr, "refused: not PID 1 (or its child) of a fresh pid namespace\n");
        return 2;
    }
    if (ns_inode("pid") == strtoul(argv[1], 0, 10) || ns_inode("mnt") == strtoul(argv[2], 0, 10) ||
        ns_inode("uts") == strtoul(argv[3], 0, 10) || ns_inode("mnt") == 0) {
        fprintf(stderr, "refused: running in a host namespace\n");
        return 2;
    }
    mkdir("/tmp", 01777); /* some images have none; the disk and chroot checks work in it */
    printf("pid=%d\n", getpid());
    printf("processes=%d\n", count);
    printf("max_pid=%d\n", max_pid);
    status_field("CapEff", "cap_eff");
    status_field("CapBnd", "cap_bnd");
    status_field("Seccomp", "seccomp");
    status_field("NoNewPrivs", "no_new_privs");

    result("sys_mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    result("sys_umount", umount2("/dev/shm", MNT_DETACH));
    result("sys_unshare", unshare(CLONE_NEWUTS));
    {
        int fd = open("/proc/self/ns/uts", O_RDONLY);
        result("sys_setns", setns(fd, 0));
        close(fd);
    }
    result("sys_keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
    {
        char attr[128] = {0};
        result("sys_bpf", syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, attr, sizeof attr));
        result("sys_perf_event_open", syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
    }
    result("sys_init_module", syscall(SYS_init_module, NULL, 0, ""));
    result("sys_finit_module", syscall(SYS_finit_module, -1, "", 0));
    result("sys_delete_module", syscall(SYS_delete_module, "orc_no_such_module", O_NONBLOCK));
    result("sys_reboot", syscall(SYS_reboot, 0, 0, 0, NULL)); /* bad magic: EINVAL if ever allowed */
    gethostname(hostname, sizeof hostname);
    result("sys_sethostname", sethostname(hostname, strlen(hostname)));

    {
        int fd = open("/proc/sys/kernel/hostname", O_WRONLY);
        result("write_proc_sys", fd);
        if (fd >= 0) close(fd);
    }
    read_only("proc_sys", "/proc/sys");
    read_only("sys", "/sys");
    result("mkdir_sys", mkdir("/sys/orc-probe", 0700));
    file_size("masked_keys", "/proc/keys");
    file_size("masked_timer_list", "/proc/timer_list");
    dir_entries("masked_sys_firmware", "/sys/firmware");
    dir_entries("masked_proc_acpi", "/proc/acpi");

    {
        dev_t dev = makedev(strtoul(argv[4], 0, 10), strtoul(argv[5], 0, 10));
        const char *node = "/tmp/orc-probe-disk";
        unlink(node);
        result("mknod_disk", mknod(node, S_IFBLK | 0600, dev));
        int fd = open(node, O_RDONLY);
        result("open_disk", fd);
        if (fd >= 0) close(fd);
        unlink(node);
    }

    /* Last: after this the probe's root may have moved. */
    stat("/", &before);
    mkdir("/tmp/orc-probe-jail", 0700);
    result("chroot", chroot("/tmp/orc-probe-jail"));
    for (int i = 0; i < 64; i++)
        if (chdir("..") != 0) break;
    chroot(".");
    stat("/", &after);
    printf("chroot_escape=%s\n",
           (before.st_dev == after.st_dev && before.st_ino == after.st_ino) ? "contained" : "ESCAPED");
    printf("host_marker=%s\n", access(argv[6], F_OK) == 0 ? "VISIBLE" : "hidden");
    return 0;
}
