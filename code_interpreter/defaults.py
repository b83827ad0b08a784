"""The sandbox's limits by default: the one source for the settings (hestami_ai/settings.py),
``sandbox.Limits`` and the fallbacks used outside Django. Plain numbers, importing nothing, so
the settings module can read them before Django is set up."""

MiB = 1024**2

TIMEOUT_DEFAULT_S = 30.0  # wall clock, kills the whole tree
TIMEOUT_MAX_S = 300.0
CPU_SECONDS = 60
# The whole execution: every process, shared memory, /tmp and /dev/shm (sandbox.memory).
MEMORY_BYTES = 512 * MiB
MAX_PROCESSES = 64
MAX_OPEN_FILES = 256
MAX_FILE_BYTES = 100 * MiB
MAX_OUTPUT_BYTES = MiB  # per stream
DISK_QUOTA_BYTES = 500 * MiB  # for the whole session directory
# Warm per-session sandboxes (sandbox.warm): per web process, per caller, idle seconds.
WARM_MAX = 4
WARM_MAX_PER_CALLER = 2
WARM_IDLE_S = 300.0
