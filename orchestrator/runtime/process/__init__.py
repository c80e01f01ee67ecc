"""Container processes: fork/unshare/pivot_root/exec, setns for exec, signals, reaping,
seccomp and capabilities."""
