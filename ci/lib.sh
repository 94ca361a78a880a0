# Shared by the ci/ scripts: privilege, messages, apt with bookworm-backports.
# shellcheck shell=sh

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

say() { printf 'bootmatrix setup: %s\n' "$*" >&2; }

# The Debian mirror this machine's bookworm sources use (the repository never names one).
debian_mirror() {
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | head -n 1)
    if [ -z "$uri" ]; then
        uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '$3 == "bookworm" {print $2}' | head -n 1)
    fi
    printf '%s\n' "$uri"
}

# apt-get download PACKAGES... into DIR (the first argument). As root, apt would hand the
# download to the _apt user, who cannot write to a mktemp folder: download as ourselves.
apt_download() {
    dir=$1
    shift
    (cd "$dir" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "$@" >/dev/null)
}

# bookworm-backports carries python3-virt-firmware. Its mirror is the one this machine already
# uses for bookworm, read from the apt sources rather than written here.
enable_backports() {
    if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return 0
    fi
    uri=$(debian_mirror)
    if [ -z "$uri" ]; then
        say "no bookworm mirror found in the apt sources; cannot enable bookworm-backports"
        return 1
    fi
    say "enabling bookworm-backports from $uri"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
        $SUDO tee /etc/apt/sources.list.d/bootmatrix-backports.sources >/dev/null
    APT_UPDATED=""
}

APT_UPDATED=""
apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}


# unpack_chain DEBDIR DEST SUITE: the signed boot chain from the packages downloaded into
# DEBDIR (shim-signed, grub-efi-amd64-signed, the signed linux-image) into DEST, with the
# marker `.bootmatrix-chain` written last (suite, then one `PACKAGE VERSION` line each).
unpack_chain() {
    debdir=$1 dest=$2 suite=$3
    rm -rf "$dest.new" "$debdir/x"
    mkdir -p "$dest.new" "$debdir/x"
    marker="suite $suite"
    for deb in "$debdir"/*.deb; do
        [ -f "$deb" ] || continue
        timeout 300 dpkg-deb -x "$deb" "$debdir/x"
        marker="$marker
$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
    done
    shim="$debdir/x/usr/lib/shim/shimx64.efi.signed"
    grub="$debdir/x/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
    # boot/vmlinuz-VERSION, or since Linux 7.x (sid) usr/lib/modules/VERSION/vmlinuz.
    kernel=$(ls "$debdir"/x/boot/vmlinuz-* "$debdir"/x/usr/lib/modules/*/vmlinuz 2>/dev/null | head -n 1)
    for f in "$shim" "$grub" "$kernel"; do
        if [ -z "$f" ] || [ ! -f "$f" ]; then
            say "$suite: the chain's packages lack ${f:-the kernel (boot/vmlinuz-* or usr/lib/modules/*/vmlinuz)}"
            return 1
        fi
    done
    cp "$shim" "$dest.new/shimx64.efi.signed"
    cp "$grub" "$dest.new/grubx64.efi.signed"
    cp "$kernel" "$dest.new/vmlinuz"
    printf '%s\n' "$marker" >"$dest.new/.bootmatrix-chain"
    rm -rf "$dest" "$debdir/x"
    mv "$dest.new" "$dest"
}
