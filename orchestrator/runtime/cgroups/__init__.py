"""cgroup v1 and v2 behind one interface, with files under an injectable root."""
