#!/usr/bin/env bash
# Installs what the code interpreter's sandbox needs (see code_interpreter/sandbox.py):
#   bubblewrap, node and a Python runtime (a virtualenv with the data-science libraries),
#   the sandbox's /etc files and a pre-built matplotlib font cache, plus esbuild for `ts`,
#   and the preloaded-Python zygote with its python3 client (code_interpreter/runtime/zygote.py).
# Idempotent: when nothing changed since the last run it only checks and exits (a few ms).
# Usage: scripts/install-sandbox.sh [RUNTIME_DIR]   (default: var/sandbox-runtime)
# SANDBOX_BUILD_ONLY=1: install without running bubblewrap, for a container image build, where
#   namespaces are not available (Dockerfile). The runtime must then be installed at /opt/runtime,
#   where the sandbox mounts it, so the font cache built outside a sandbox records the paths code
#   sees inside one. The smoke test is skipped: the service's start-up check runs a real sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME="${1:-${CODE_INTERPRETER_RUNTIME_DIR:-${VAR_DIR:-var}/sandbox-runtime}}"
REQUIREMENTS=code_interpreter/runtime/requirements.txt
PACKAGE_JSON=code_interpreter/runtime/package.json
DROPUID_C=code_interpreter/runtime/dropuid.c
CLIENT_C=code_interpreter/runtime/python_client.c
ZYGOTE_PY=(code_interpreter/runtime/__init__.py code_interpreter/runtime/zygote*.py code_interpreter/runtime/warm_agent.py)
STAMP="$RUNTIME/.installed"
# The sandbox sees the runtime here (code_interpreter/sandbox.py: RUNTIME_MOUNT).
RUNTIME_MOUNT=/opt/runtime
BUILD_ONLY="${SANDBOX_BUILD_ONLY:-}"

say() { echo "[sandbox] $*"; }
die() { echo "[sandbox] ERROR: $*" >&2; exit 1; }

stamp_value() {
  cat "$0" "$REQUIREMENTS" "$PACKAGE_JSON" "$DROPUID_C" "$CLIENT_C" "${ZYGOTE_PY[@]}" \
    | sha256sum | cut -d' ' -f1
}

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {  # apt_install PACKAGE... : as root on Debian, else print the command and stop
  if is_root && command -v apt-get >/dev/null; then
    say "installing $* from Debian's packages"
    if [ -z "${_APT_UPDATED:-}" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    die "$* missing. Install with: sudo apt-get update && sudo apt-get install -y $*"
  fi
}

base_python() {  # the interpreter the runtime's virtualenv is made from: it must live under /usr
  for candidate in /usr/bin/python3.11 /usr/bin/python3; do
    if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
}

# Fast path: everything installed by this exact script and requirement list.
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_value)" ] \
  && command -v bwrap >/dev/null && [ -x /usr/bin/node ] && [ -x "$RUNTIME/venv/bin/python3" ]; then
  exit 0
fi

say "setting up the code interpreter sandbox in $RUNTIME"

# 1. bubblewrap, node and a Debian Python with venv (the sandbox mounts /usr read-only).
command -v bwrap >/dev/null || apt_install bubblewrap
[ -x /usr/bin/node ] || apt_install nodejs
PY="$(base_python)"
[ -n "$PY" ] || { apt_install python3 python3-venv; PY="$(base_python)"; }
"$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
say "bubblewrap $(bwrap --version | cut -d' ' -f2), node $(/usr/bin/node --version), $("$PY" --version)"

# 2. The Python runtime.
mkdir -p "$RUNTIME"
if [ ! -x "$RUNTIME/venv/bin/python3" ]; then
  say "creating the runtime virtualenv ($RUNTIME/venv)"
  "$PY" -m venv "$RUNTIME/venv"
fi
say "installing the runtime's Python libraries (first time: about a minute)"
"$RUNTIME/venv/bin/python3" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
# setuptools is of no use without a network, and its .pth file costs every start-up an import.
"$RUNTIME/venv/bin/python3" -m pip uninstall --quiet --disable-pip-version-check -y setuptools \
  >/dev/null 2>&1 || true
# The runtime is read-only in the sandbox: compile everything now so imports never try to write.
"$RUNTIME/venv/bin/python3" -m compileall -q -j 0 "$RUNTIME/venv/lib" >/dev/null || true

# 3. esbuild for TypeScript (optional: without it `ts` is reported unsupported).
if command -v npm >/dev/null; then
  say "installing esbuild for TypeScript"
  mkdir -p "$RUNTIME/node"
  cp "$PACKAGE_JSON" "$RUNTIME/node/package.json"
  if ! (cd "$RUNTIME/node" && npm install --silent --no-audit --no-fund --omit=dev >/dev/null 2>&1); then
    say "warning: npm install failed; TypeScript will be unavailable"
  fi
else
  say "npm not found: TypeScript will be unavailable (apt-get install npm to enable it)"
fi

# 4. The uid-dropping helper a root-run service starts code with (optional: setpriv otherwise).
mkdir -p "$RUNTIME/bin"
if command -v cc >/dev/null && cc -O2 -static -o "$RUNTIME/bin/sandbox-dropuid.new" "$DROPUID_C" 2>/dev/null; then
  mv "$RUNTIME/bin/sandbox-dropuid.new" "$RUNTIME/bin/sandbox-dropuid"
else
  rm -f "$RUNTIME/bin/sandbox-dropuid.new" "$RUNTIME/bin/sandbox-dropuid"
  say "no C compiler with a static libc: a root-run service will use setpriv (slower start)"
fi

# 4b. The preloaded-Python zygote and its python3 client. The client becomes venv/bin/python3
#   and venv/bin/python (hard links, so sys._base_executable stays a real file); it execs the
#   real interpreter through venv/bin/.real/<name> (so the process keeps its name) whenever no
#   zygote serves it. Without a C compiler python3 stays the plain interpreter.
REAL_NAME="python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
VENV_BIN="$RUNTIME/venv/bin"
mkdir -p "$VENV_BIN/.real"
for name in python3 python; do ln -sfn "../$REAL_NAME" "$VENV_BIN/.real/$name"; done
if command -v cc >/dev/null && cc -O2 -static -Wall -Wextra \
    -DREAL_PYTHON="\"$RUNTIME_MOUNT/venv/bin/$REAL_NAME\"" \
    -o "$RUNTIME/bin/sandbox-python.new" "$CLIENT_C" 2>/dev/null; then
  mv "$RUNTIME/bin/sandbox-python.new" "$RUNTIME/bin/sandbox-python"
  for name in python3 python; do ln -f "$RUNTIME/bin/sandbox-python" "$VENV_BIN/$name"; done
else
  rm -f "$RUNTIME/bin/sandbox-python.new" "$RUNTIME/bin/sandbox-python"
  for name in python3 python; do ln -sfn "$REAL_NAME" "$VENV_BIN/$name"; done
  say "no C compiler with a static libc: python3 will not use the preloaded zygote"
fi
rm -rf "$RUNTIME/zygote"
mkdir -p "$RUNTIME/zygote/code_interpreter/runtime"
: > "$RUNTIME/zygote/code_interpreter/__init__.py"
cp "${ZYGOTE_PY[@]}" "$RUNTIME/zygote/code_interpreter/runtime/"
"$VENV_BIN/$REAL_NAME" -m compileall -q "$RUNTIME/zygote" >/dev/null
cat > "$RUNTIME/bin/sandbox-zygote" <<ZYGOTE
#!/bin/sh
# Starts the preloaded Python zygote inside a sandbox: sandbox-zygote --socket PATH [--preload M,...]
unset PYTHONPATH
runtime="\$(cd "\$(dirname "\$0")/.." && pwd)" || exit 1
cd "\$runtime/zygote" && exec "\$runtime/venv/bin/$REAL_NAME" -m code_interpreter.runtime.zygote "\$@"
ZYGOTE
chmod 755 "$RUNTIME/bin/sandbox-zygote"

# 5. The sandbox's /etc: a user for the sandbox's uid, localhost, nothing of the host's.
mkdir -p "$RUNTIME/etc" "$RUNTIME/empty" "$RUNTIME/mplconfig"
cat > "$RUNTIME/etc/passwd" <<'PASSWD'
root:x:0:0:root:/tmp:/usr/sbin/nologin
sandbox:x:65534:65534:sandbox:/tmp:/bin/bash
PASSWD
cat > "$RUNTIME/etc/group" <<'GROUP'
root:x:0:
sandbox:x:65534:
GROUP
printf '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n' > "$RUNTIME/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$RUNTIME/etc/nsswitch.conf"

# 6. matplotlib's font cache, built inside a sandbox so its font paths match what code sees there.
say "building matplotlib's font cache"
rm -f "$RUNTIME"/mplconfig/*.json
if [ -n "$BUILD_ONLY" ]; then
  [ "$(realpath "$RUNTIME")" = "$RUNTIME_MOUNT" ] \
    || die "SANDBOX_BUILD_ONLY needs the runtime in $RUNTIME_MOUNT, not $RUNTIME"
  env -i MPLCONFIGDIR="$RUNTIME/mplconfig" MPLBACKEND=Agg HOME=/tmp \
    "$RUNTIME/venv/bin/python3" -c 'import matplotlib.pyplot as plt; plt.figure()'
else
  bwrap --unshare-all --die-with-parent \
    --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
    --ro-bind "$RUNTIME" "$RUNTIME_MOUNT" --bind "$RUNTIME/mplconfig" /tmp/.matplotlib \
    --ro-bind-try /etc/fonts /etc/fonts --proc /proc --dev /dev \
    --clearenv --setenv MPLCONFIGDIR /tmp/.matplotlib \
    --setenv MPLBACKEND Agg --setenv HOME /tmp \
    "$RUNTIME_MOUNT/venv/bin/python3" -c 'import matplotlib.pyplot as plt; plt.figure()'
fi
ls "$RUNTIME"/mplconfig/fontlist-*.json >/dev/null 2>&1 || die "matplotlib's font cache was not built"
chmod -R a+rX "$RUNTIME"

# 7. Smoke test: the sandbox runs and bubblewrap works on this kernel.
if [ -z "$BUILD_ONLY" ] && ! bwrap --unshare-all --die-with-parent --ro-bind /usr /usr \
  --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev \
  /usr/bin/true; then
  die "bubblewrap cannot create namespaces here (unprivileged user namespaces disabled?)."
fi

stamp_value > "$STAMP"
say "ready"
