#!/usr/bin/env bash
# Prints the diskimage-builder environment that builds a Debian image from the apt mirror THIS
# machine already uses (no other network access needed), for `debian-minimal` builds:
#
#   eval "$(scripts/dib-env.sh)"                 # shell: export DIB_...=...
#   scripts/dib-env.sh --json                    # {"DIB_...": "..."} (tests, nodepool.yaml env-vars)
#   scripts/dib-env.sh --release bookworm        # default: VERSION_CODENAME of /etc/os-release
#
# Why: debian-minimal's default apt sources point at http://security.debian.org/ <release>/updates,
# which is wrong for bookworm (the suite is <release>-security) and unreachable where only the
# local mirror is. We read /etc/apt/sources.list.d/*.sources (deb822) and /etc/apt/sources.list(.d/*.list)
# and keep the entries for <release>, <release>-updates, <release>-security, <release>-backports.
#
# Also printed: DIB_DEBOOTSTRAP_CACHE=1 and DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE=1 so the debootstrap
# result is cached in DIB_IMAGE_CACHE (default ~/.cache/image-create) and reused — a warm build
# skips debootstrap entirely; the .deb files are cached there by DIB's dpkg element anyway.
set -euo pipefail

format=shell
release=""
while [ $# -gt 0 ]; do
    case "$1" in
        --json) format=json; shift ;;
        --shell) format=shell; shift ;;
        --release) release="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "dib-env.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$release" ]; then
    release=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
fi
if [ -z "$release" ]; then
    echo "dib-env.sh: cannot tell the Debian release; pass --release" >&2
    exit 1
fi

# One line per source: "<uri> <suite> <components...>"
sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        # deb822: stanzas separated by blank lines; multi-value fields are space separated
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
                    nu = split(uris, U, " "); ns = split(suites, S, " ")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print U[i], S[j], comps
                }
                types = ""; uris = ""; suites = ""; comps = ""; enabled = ""
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
                if (key == "types") types = $0
                else if (key == "uris") uris = $0
                else if (key == "suites") suites = $0
                else if (key == "components") comps = $0
                else if (key == "enabled") enabled = tolower($0)
            }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        # one-line style: deb [options] uri suite components...
        awk '$1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                line = $(i) " " $(i + 1)
                for (k = i + 2; k <= NF; k++) line = line " " $k
                print line
            }' "$f"
    done
}

mirror=""
conf=""
components=""
while read -r uri suite comps; do
    case "$suite" in
        "$release") name=default ;;
        "$release-updates") name=updates ;;
        "$release-security") name=security ;;
        "$release-backports") name=backports ;;
        *) continue ;;
    esac
    comps="${comps:-main}"
    if [ "$name" = default ] && [ -z "$mirror" ]; then
        mirror="$uri"
        components="${comps// /,}"
    fi
    # debian-minimal writes one file per name; keep the first entry for each
    case "$conf" in *"$name:"*) continue ;; esac
    conf+="$name:deb $uri $suite $comps"$'\n'
done < <(sources)

if [ -z "$mirror" ]; then
    echo "dib-env.sh: no apt source for $release found in /etc/apt" >&2
    exit 1
fi
conf="${conf%$'\n'}"

vars=(
    "DIB_DISTRIBUTION_MIRROR=$mirror"
    "DIB_DEBIAN_COMPONENTS=$components"
    "DIB_APT_SOURCES_CONF=$conf"
    "DIB_DEBOOTSTRAP_CACHE=1"
    "DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE=1"
)

if [ "$format" = json ]; then
    # values come from apt configuration: escape backslash, quote and newline
    out="{"
    sep=""
    for v in "${vars[@]}"; do
        key="${v%%=*}"
        val="${v#*=}"
        val="${val//\\/\\\\}"
        val="${val//\"/\\\"}"
        val="${val//$'\n'/\\n}"
        out+="$sep\"$key\": \"$val\""
        sep=", "
    done
    echo "$out}"
else
    for v in "${vars[@]}"; do
        printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"
    done
fi
