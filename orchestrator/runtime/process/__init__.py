"""orc's own container runtime: namespaces, mounts, pivot_root, capabilities, seccomp, exec.

``runtime.ForkServerRuntime`` is what the reconciler uses (the ``ProcessRuntime`` Protocol;
``fake.FakeProcessRuntime`` for tests above); it drives ``forkserver`` (the single-threaded
process that forks every container), which runs ``sequence`` (the start and exec order) against
``kernel.Kernel`` (``LinuxKernel``; ``fake.RecordingKernel`` for unit tests). ``spec`` is the
runtime's own container description, ``capabilities``, ``seccomp`` and ``users`` the policy parts,
``wire`` the socket messages. See specs/container-lifecycle.md and specs/security-defaults.md.
"""
