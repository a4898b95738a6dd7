#!/usr/bin/env bash
# Install mavmq as a system service on Raspberry Pi OS, Debian or Ubuntu (incl. Jetson L4T).
#
#   sudo scripts/install.sh                    # air side (vehicle): /opt/mavmq, /etc/mavmq, mavmq-air.service
#   sudo scripts/install.sh --role ground      # gateway: mavmq-ground.service
#   sudo scripts/install.sh --uninstall        # remove the program and units; keep /etc/mavmq, /var/lib/mavmq
#   sudo scripts/install.sh --uninstall --purge
#   scripts/install.sh --root "$(mktemp -d)" --no-user --no-enable    # throwaway root (tests, packaging)
#
# What goes where (ROOT is "" unless --root):
#   ROOT/opt/mavmq/            compiled JavaScript (dist/), production node_modules, bin/mavmq, docs
#   ROOT/usr/local/bin/mavmq   -> /opt/mavmq/bin/mavmq
#   ROOT/etc/mavmq/            air.yaml / ground.yaml (never overwritten: new defaults go to *.dist), keys/
#   ROOT/etc/systemd/system/   mavmq-air.service, mavmq-ground.service
#   ROOT/etc/udev/rules.d/     99-mavmq-autopilot.rules (/dev/autopilot)
#   ROOT/var/lib/mavmq/        state (tlogs), created by the units' StateDirectory= too
# Re-running it upgrades in place (the program directory is swapped atomically) and restarts a
# running service. See docs/OPERATIONS.md.
set -euo pipefail

PREFIX=/opt/mavmq
ROOT=
ROLE=air
CREATE_USER=1
ENABLE=1
UNINSTALL=0
PURGE=0
DIST=
OFFLINE=0
SERVICE_USER=mavmq
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<'EOF'

Options:
  --prefix DIR     program directory (default /opt/mavmq)
  --root DIR       install into DIR as if it were / (no user is created, systemctl works offline)
  --role ROLE      air (default), ground or both: which config and unit to set up and enable
  --no-user        do not create the mavmq system user
  --no-enable      do not run systemctl / udevadm (units are still installed)
  --dist DIR       use this prebuilt dist/ instead of building (release tarballs)
  --offline        npm ci --offline (only the npm cache, no network)
  --uninstall      remove program, units, udev rule and the mavmq link
  --purge          with --uninstall: also /etc/mavmq, /var/lib/mavmq and the mavmq user
  -h, --help       this text
EOF
}

say() { printf 'mavmq-install: %s\n' "$*"; }
die() { printf 'mavmq-install: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#*=}"; shift ;;
    --role) ROLE="${2:?--role needs air, ground or both}"; shift 2 ;;
    --role=*) ROLE="${1#*=}"; shift ;;
    --dist) DIST="${2:?--dist needs a directory}"; shift 2 ;;
    --dist=*) DIST="${1#*=}"; shift ;;
    --no-user) CREATE_USER=0; shift ;;
    --no-enable) ENABLE=0; shift ;;
    --offline) OFFLINE=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

case "$ROLE" in air) UNITS=(mavmq-air.service) ;; ground) UNITS=(mavmq-ground.service) ;; both) UNITS=(mavmq-air.service mavmq-ground.service) ;; *) die "--role must be air, ground or both, got '$ROLE'" ;; esac
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
PREFIX="${PREFIX%/}"
case "$PREFIX" in ''|/|/usr|/usr/local|/opt|/etc|/var|/home|/bin|/lib|/sbin|/boot|/srv) die "--prefix $PREFIX would be a system directory; use a dedicated one such as /opt/mavmq" ;; esac
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
  [ "$ROOT" != "/" ] || ROOT=
fi
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge goes with --uninstall"

DEST="$ROOT$PREFIX"
ETC="$ROOT/etc/mavmq"
STATE="$ROOT/var/lib/mavmq"
UNITDIR="$ROOT/etc/systemd/system"
UDEVDIR="$ROOT/etc/udev/rules.d"
LINK="$ROOT/usr/local/bin/mavmq"
MARKER=.mavmq-install
ALL_UNITS=(mavmq-air.service mavmq-ground.service)

# systemctl on the live system only when systemd is PID 1; offline (--root) it edits symlinks.
systemd_live() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
can_systemctl() { [ "$ENABLE" = 1 ] && { systemd_live || { [ -n "$ROOT" ] && command -v systemctl >/dev/null 2>&1; }; }; }
sysctl_() { if [ -n "$ROOT" ]; then systemctl --root="$ROOT" "$@"; else systemctl "$@"; fi; }
user_exists() { [ -z "$ROOT" ] && id -u "$SERVICE_USER" >/dev/null 2>&1; }
am_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------------------------------------
if [ "$UNINSTALL" = 1 ]; then
  if [ -d "$DEST" ] && [ ! -e "$DEST/$MARKER" ]; then die "$DEST was not installed by this script (no $MARKER); not removing anything"; fi
  if can_systemctl; then
    for u in "${ALL_UNITS[@]}"; do
      if [ -e "$UNITDIR/$u" ]; then
        if systemd_live; then systemctl disable --now "$u" >/dev/null 2>&1 || true; else sysctl_ disable "$u" >/dev/null 2>&1 || true; fi
      fi
    done
  fi
  for u in "${ALL_UNITS[@]}"; do rm -f "$UNITDIR/$u"; done
  rm -f "$UDEVDIR/99-mavmq-autopilot.rules"
  if [ -L "$LINK" ]; then rm -f "$LINK"; fi
  if [ -d "$DEST" ]; then
    rm -rf "$DEST"
    say "removed $DEST"
  fi
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE"
    say "purged $ETC and $STATE"
    if [ "$CREATE_USER" = 1 ] && user_exists && am_root; then userdel "$SERVICE_USER" 2>/dev/null || true; say "removed user $SERVICE_USER"; fi
  else
    say "kept $ETC (config, keys) and $STATE (recordings); --purge removes them"
  fi
  if systemd_live && [ "$ENABLE" = 1 ]; then
    systemctl daemon-reload
    command -v udevadm >/dev/null 2>&1 && udevadm control --reload 2>/dev/null || true
  fi
  say "uninstalled"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Preconditions

command -v node >/dev/null 2>&1 || die "Node.js >= 20 is required and 'node' is not on PATH (Raspberry Pi OS/Debian/Ubuntu: https://github.com/nodesource/distributions, e.g. 'curl -fsSL https://deb.nodesource.com/setup_20.x | sudo -E bash - && sudo apt-get install -y nodejs')"
NODE_VERSION="$(node -p 'process.versions.node')"
[ "${NODE_VERSION%%.*}" -ge 20 ] 2>/dev/null || die "Node.js >= 20 is required, found $NODE_VERSION (the distribution's nodejs package is often older: use NodeSource)"
NODE_BIN="$(command -v node)"
case "$NODE_BIN" in
  /usr/bin/node|/usr/local/bin/node|/bin/node) ;;
  *) say "warning: node is $NODE_BIN; the service runs 'node' from systemd's PATH (/usr/local/bin:/usr/bin), and ProtectHome= hides /home. Install Node system-wide (NodeSource) or link it to /usr/local/bin/node." ;;
esac
command -v npm >/dev/null 2>&1 || die "npm is required to install the production dependencies"
[ -f "$SRC/package.json" ] && [ -f "$SRC/package-lock.json" ] || die "$SRC does not look like a mavmq source tree (package.json, package-lock.json)"
if [ -z "$ROOT" ] && ! am_root; then die "run as root (sudo), or use --root DIR for a throwaway root"; fi

# ---------------------------------------------------------------------------------------------
# The service user: a system account in dialout (serial ports), no login, no home.

if [ "$CREATE_USER" = 1 ] && [ -z "$ROOT" ]; then
  getent group dialout >/dev/null 2>&1 || groupadd --system dialout
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    usermod -a -G dialout "$SERVICE_USER"
  else
    NOLOGIN="$(command -v nologin || echo /usr/sbin/nologin)"
    useradd --system --user-group --groups dialout --home-dir /var/lib/mavmq --no-create-home --shell "$NOLOGIN" --comment "mavmq daemon" "$SERVICE_USER"
    say "created system user $SERVICE_USER (groups: $SERVICE_USER, dialout)"
  fi
elif [ "$CREATE_USER" = 1 ]; then
  say "--root: not creating the $SERVICE_USER user (do that on the target: useradd --system --user-group --groups dialout $SERVICE_USER)"
fi

# ---------------------------------------------------------------------------------------------
# Build into a staging directory next to the destination, then swap it in.

mkdir -p "$(dirname "$DEST")"
if [ -e "$DEST" ] && [ ! -e "$DEST/$MARKER" ] && [ -n "$(ls -A "$DEST" 2>/dev/null)" ]; then
  die "$DEST exists and was not installed by this script (no $MARKER); remove it or pick another --prefix"
fi
STAGE="$(mktemp -d "$DEST.new.XXXXXX")"
OLD=
cleanup() { rm -rf "$STAGE"; if [ -n "$OLD" ] && [ -d "$OLD" ]; then rm -rf "$OLD"; fi; }
trap cleanup EXIT

VERSION="$(node -p "require('$SRC/package.json').version")"
say "installing mavmq $VERSION from $SRC to $DEST (role: $ROLE)"

if [ -n "$DIST" ]; then
  [ -f "$DIST/cli/run.js" ] || die "--dist $DIST has no cli/run.js"
  cp -R "$DIST" "$STAGE/dist"
elif [ -x "$SRC/node_modules/.bin/tsc" ]; then
  # Compile into the stage, not the source tree's dist/ (others may be working in that tree).
  (cd "$SRC" && npm run --silent build -- --outDir "$STAGE/dist") || die "build failed (npm run build)"
elif [ -f "$SRC/dist/cli/run.js" ]; then
  say "no TypeScript compiler here: using the prebuilt $SRC/dist"
  cp -R "$SRC/dist" "$STAGE/dist"
else
  die "nothing to install: no dist/ and no node_modules/.bin/tsc (run 'npm ci' in $SRC first, or pass --dist DIR)"
fi
[ -f "$STAGE/dist/cli/run.js" ] || die "the build produced no dist/cli/run.js"
find "$STAGE/dist" -name '*.map' -delete

cp "$SRC/package.json" "$SRC/package-lock.json" "$STAGE/"
NPM_FLAGS=(ci --omit=dev --no-audit --no-fund --loglevel=error)
if [ "$OFFLINE" = 1 ]; then NPM_FLAGS+=(--offline); else NPM_FLAGS+=(--prefer-offline); fi
(cd "$STAGE" && NPM_CONFIG_UPDATE_NOTIFIER=false npm "${NPM_FLAGS[@]}" >/dev/null) || die "npm ci --omit=dev failed in $STAGE"

mkdir -p "$STAGE/bin" "$STAGE/docs" "$STAGE/share/config" "$STAGE/share/systemd"
cp "$SRC/bin/mavmq.js" "$STAGE/bin/mavmq.js"
chmod 0755 "$STAGE/bin/mavmq.js"
ln -s mavmq.js "$STAGE/bin/mavmq"
for f in OPERATIONS.md PROTOCOL.md; do [ -f "$SRC/docs/$f" ] && cp "$SRC/docs/$f" "$STAGE/docs/"; done
for f in air.example.yaml ground.example.yaml policy.yaml mosquitto.example.conf mosquitto-acl.example; do [ -f "$SRC/config/$f" ] && cp "$SRC/config/$f" "$STAGE/share/config/"; done
cp "$SRC/systemd/"*.service "$SRC/systemd/99-mavmq-autopilot.rules" "$STAGE/share/systemd/"
printf 'mavmq %s installed %s from %s\n' "$VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SRC" > "$STAGE/$MARKER"
chmod -R u=rwX,go=rX "$STAGE"

# Swap: the running service keeps its already-loaded modules until it is restarted below.
if [ -e "$DEST" ]; then OLD="$DEST.old.$$"; mv "$DEST" "$OLD"; fi
if ! mv "$STAGE" "$DEST"; then
  if [ -n "$OLD" ]; then mv "$OLD" "$DEST"; OLD=; fi
  die "could not move the new program into $DEST; the previous installation is unchanged"
fi
STAGE=
say "installed program to $DEST"

mkdir -p "$(dirname "$LINK")"
ln -sfn "$PREFIX/bin/mavmq" "$LINK"

# ---------------------------------------------------------------------------------------------
# Configuration: never overwrite what a technician edited.

install_config() { # SRC DST MODE
  local src="$1" dst="$2" mode="$3"
  if [ ! -e "$dst" ]; then
    install -m "$mode" "$src" "$dst"
    say "created $dst"
  elif cmp -s "$src" "$dst"; then
    :
  else
    install -m "$mode" "$src" "$dst.dist"
    say "kept your $dst; the new default is $dst.dist (diff -u $dst $dst.dist)"
  fi
}

mkdir -p "$ETC" "$ETC/keys" "$STATE"
chmod 0750 "$ETC" "$STATE"
chmod 0700 "$ETC/keys"
for unit in "${UNITS[@]}"; do
  case "$unit" in
    mavmq-air.service)
      install_config "$SRC/config/air.example.yaml" "$ETC/air.yaml" 0640
      install_config "$SRC/config/policy.yaml" "$ETC/policy.yaml" 0640 ;;
    mavmq-ground.service) install_config "$SRC/config/ground.example.yaml" "$ETC/ground.yaml" 0640 ;;
  esac
done
if user_exists && am_root; then
  chown root:"$SERVICE_USER" "$ETC" "$ETC"/*.yaml 2>/dev/null || true
  chown "$SERVICE_USER:$SERVICE_USER" "$ETC/keys" "$STATE"
fi

# ---------------------------------------------------------------------------------------------
# systemd units and the udev rule (package-owned: overwritten; local changes go in drop-ins).

mkdir -p "$UNITDIR" "$UDEVDIR"
for u in "${ALL_UNITS[@]}"; do
  sed "s#/opt/mavmq#$PREFIX#g" "$SRC/systemd/$u" > "$UNITDIR/$u"
  chmod 0644 "$UNITDIR/$u"
done
install -m 0644 "$SRC/systemd/99-mavmq-autopilot.rules" "$UDEVDIR/99-mavmq-autopilot.rules"

if can_systemctl; then
  if systemd_live; then
    systemctl daemon-reload
    if command -v udevadm >/dev/null 2>&1; then udevadm control --reload && udevadm trigger --subsystem-match=tty || true; fi
  fi
  for u in "${UNITS[@]}"; do
    sysctl_ enable "$u" >/dev/null 2>&1 || die "systemctl enable $u failed"
    say "enabled $u"
    if systemd_live && systemctl is-active --quiet "$u"; then
      systemctl restart "$u"
      say "restarted $u (upgrade)"
    fi
  done
else
  say "units installed, not enabled (--no-enable or no systemd): systemctl enable --now ${UNITS[*]}"
fi

say "done. Next: mavmq provision --vehicle ID --broker URL (docs/OPERATIONS.md), then: sudo systemctl restart ${UNITS[0]}"
