"""Build the deploy ramdisk: Debian's kernel and an initramfs that writes a disk image (init_script).

Everything comes from Debian packages of the host's apt sources (`apt-get download` + `dpkg -x`):
the kernel and its modules (vaquero.lab.kernel, shared with the lab), busybox-static, sfdisk
(fdisk) and e2fsck/resize2fs (e2fsprogs) with the shared libraries they need (checked with the
packaged loader's `--list`, so a missing library fails the build, not the deploy). The result is
cached under the lab cache by a content hash of what goes in: the package names, versions and
.deb SHA-256 sums from the apt index, the kernel version, the modules and the /init text. A second
build with the same inputs is a file lookup; the output is byte-for-byte reproducible (zeroed
times, sorted cpio, gzip with no time stamp).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vaquero.image.build import sha256_file
from vaquero.lab.initramfs import UDHCPC_SCRIPT, _module_order
from vaquero.lab.kernel import DEFAULT_CACHE, Kernel, LabError, fetch_kernel, run_tool

from .init_script import INIT

BUILD_FORMAT = "vaquero-deploy-ramdisk/1"
# Disks, NICs and file systems a deploy meets on virtual and common real hardware (with their
# dependencies); crc32c and the code pages are what ext4 and vfat ask the kernel for at mount time.
MODULES = (
    "virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "sd_mod", "nvme", "ahci", "ata_piix",
    "e1000", "e1000e", "igb", "ixgbe", "ext4", "vfat", "crc32c_generic", "nls_cp437", "nls_ascii",
)  # fmt: skip
# Packages whose files go in: busybox for the shell and tools, sfdisk and e2fsprogs with the
# libraries they link (the loader check below proves the list complete); for the image stream
# pigz, GNU tee and GNU dd: under emulation busybox's gunzip is the slowest stage, busybox's tee
# moves 1 KiB per read (GNU tee 8 KiB), and GNU dd counts the bytes it wrote (docs/install.md
# "Image deploy" has the figures).
PACKAGES = (
    "busybox-static", "fdisk", "libfdisk1", "libmount1", "libsmartcols1", "libblkid1", "libuuid1",
    "libselinux1", "libpcre2-8-0", "libreadline8", "libtinfo6", "e2fsprogs", "libext2fs2",
    "libcom-err2", "libss2", "libc6", "coreutils", "pigz", "zlib1g",
)  # fmt: skip
# package path -> name in /usr/sbin; GNU dd and tee get their own names, so `dd` and `tee` stay
# busybox's everywhere else in /init
BINARIES = {
    "sbin/sfdisk": "sfdisk", "sbin/e2fsck": "e2fsck", "sbin/resize2fs": "resize2fs",
    "usr/bin/pigz": "pigz", "bin/dd": "gnu-dd", "usr/bin/tee": "gnu-tee",
}  # fmt: skip
LOADER = "lib64/ld-linux-x86-64.so.2"
LIBDIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")


@dataclass(frozen=True)
class Ramdisk:
    kernel: Path
    initrd: Path
    kernel_sha256: str
    initrd_sha256: str
    key: str  # the content hash the initrd is cached under

    def profile(self, kernel_path: str | None = None, initrd_path: str | None = None) -> dict[str, object]:
        """The `kernel` and `initrd` of an image profile that boots this ramdisk."""
        return {
            "kernel": {"path": kernel_path or str(self.kernel), "sha256": self.kernel_sha256},
            "initrd": [{"path": initrd_path or str(self.initrd), "sha256": self.initrd_sha256}],
        }



def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[str, str, str]]:
    """package -> (version, .deb file name, .deb sha256) of the candidate in the apt index (no download)."""
    out = run_tool(["apt-cache", "show", "--no-all-versions", *packages])
    found: dict[str, tuple[str, str, str]] = {}
    for para in out.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in para.splitlines() if ": " in line and not line.startswith(" "))
        name = fields.get("Package")
        if name in packages and name not in found:
            found[name] = (fields.get("Version", ""), Path(fields.get("Filename", "")).name, fields.get("SHA256", ""))
    missing = [p for p in packages if p not in found or not all(found[p])]
    if missing:
        raise LabError(f"apt has no candidate for {', '.join(missing)} (apt-get update?)")
    return found


def _download(cache: Path, versions: dict[str, tuple[str, str, str]]) -> dict[str, Path]:
    """The .deb of each package, downloaded once into cache/debs and checked against the index's sha256."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    # apt-get download names a file <package>_<version, ':' as %3a>_<arch>.deb
    paths = {name: debs / f"{name}_{version.replace(':', '%3a')}_{file.rsplit('_', 1)[-1]}" for name, (version, file, _) in versions.items()}
    wanted = [f"{name}={versions[name][0]}" for name, p in paths.items() if not p.is_file()]
    if wanted:
        run_tool(["apt-get", "download", *wanted], cwd=debs)
    for name, path in paths.items():
        if not path.is_file():
            raise LabError(f"apt-get download left no {path.name} in {debs}")
        got = sha256_file(path)
        if got != versions[name][2]:
            path.unlink()
            raise LabError(f"{path.name} has sha256 {got}, the apt index says {versions[name][2]}: removed")
    return paths


def build_key(kernel: Kernel, versions: dict[str, tuple[str, str, str]], modules: tuple[str, ...] = MODULES, init: str = INIT) -> str:
    doc = {"format": BUILD_FORMAT, "kernel": kernel.version, "modules": list(modules), "packages": versions, "init": init, "udhcpc": UDHCPC_SCRIPT}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _copy_modules(kernel: Kernel, root: Path, modules: tuple[str, ...]) -> list[str]:
    """The modules (and their dependencies) under root/lib/modules/<version>, with modules.dep for busybox modprobe."""
    builtin = kernel.modules / "modules.builtin"
    built_in = {Path(line).name.split(".ko")[0].replace("-", "_") for line in builtin.read_text().split()} if builtin.is_file() else set()
    wanted = tuple(m for m in modules if m not in built_in)
    dest = root / "lib" / "modules" / kernel.version
    for rel in _module_order(kernel, wanted):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kernel.modules / rel, target)
    for name in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
        if (kernel.modules / name).is_file():
            shutil.copy2(kernel.modules / name, dest / name)
    run_tool(["depmod", "-b", str(root), kernel.version])
    return list(wanted)


def _unpack(debs: dict[str, Path], into: Path) -> None:
    for name in sorted(debs):
        run_tool(["dpkg", "-x", str(debs[name]), str(into)])


def _assemble(kernel: Kernel, debs: dict[str, Path], root: Path, modules: tuple[str, ...], init: str) -> None:
    with tempfile.TemporaryDirectory(prefix="vaquero-deploy-debs-") as tmp:
        pkgs = Path(tmp)
        _unpack(debs, pkgs)
        for d in ("bin", "dev", "etc", "proc", "sys", "run", "tmp", "mnt", "usr/sbin", "lib/x86_64-linux-gnu", "lib64", "sbin"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(pkgs / "bin" / "busybox", root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        (root / "sbin" / "modprobe").symlink_to("../bin/busybox")  # the kernel's request_module runs it
        libs = root / "lib" / "x86_64-linux-gnu"
        for libdir in LIBDIRS:
            src = pkgs / libdir
            if not src.is_dir():
                continue
            for lib in sorted(src.glob("*.so*")):
                if lib.is_symlink():
                    target = os.readlink(lib)
                    (libs / lib.name).unlink(missing_ok=True)
                    (libs / lib.name).symlink_to(Path(target).name)
                elif lib.is_file():
                    shutil.copy2(lib, libs / lib.name)
        (root / LOADER).symlink_to("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        for rel, name in BINARIES.items():
            shutil.copy2(pkgs / rel, root / "usr" / "sbin" / name)
            _check_libraries(root, root / "usr" / "sbin" / name)
    loaded = _copy_modules(kernel, root, modules)
    (root / "etc" / "modules").write_text("\n".join(loaded) + "\n")
    for path, text in ((root / "init", init), (root / "etc" / "udhcpc.script", UDHCPC_SCRIPT)):
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _check_libraries(root: Path, binary: Path) -> None:
    """Every library `binary` needs resolves inside the ramdisk (the packaged loader lists them)."""
    loader = root / "lib" / "x86_64-linux-gnu" / "ld-linux-x86-64.so.2"
    out = run_tool([str(loader), "--library-path", str(root / "lib" / "x86_64-linux-gnu"), "--list", str(binary)], env={"PATH": "/usr/bin:/bin"})
    missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
    resolved = [line.split("=>")[1].split()[0] for line in out.splitlines() if "=>" in line and "not found" not in line]
    outside = [path for path in resolved if not path.startswith(str(root))]
    if missing or outside:
        raise LabError(f"deploy ramdisk: {binary.name} needs {', '.join(missing + outside)}, which the package list does not provide")


def _cpio(root: Path, out: Path) -> None:
    for p in root.rglob("*"):
        os.utime(p, (0, 0), follow_symlinks=False)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    cpio = subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"], cwd=root, input="\n".join(names).encode(), check=True, capture_output=True
    ).stdout
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(cpio)
    tmp.replace(out)


def build_ramdisk(cache: Path = DEFAULT_CACHE, modules: tuple[str, ...] = MODULES, init: str = INIT) -> Ramdisk:
    """The deploy ramdisk (kernel + initrd) for the host's apt sources, built once per content hash.

    `init` replaces the /init script (benchmarks build a peer ramdisk with the same kernel, tools
    and modules whose /init runs a plain dd); it is part of the cache key."""
    if shutil.which("cpio") is None:
        raise LabError("cpio is not installed")
    kernel = fetch_kernel(cache)
    versions = package_versions()
    key = build_key(kernel, versions, modules, init)
    out = cache / "deploy" / f"deploy-initrd-{key[:16]}.img"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(cache / "deploy" / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not out.is_file():
                debs = _download(cache, versions)
                with tempfile.TemporaryDirectory(prefix="vaquero-deploy-root-") as tmp:
                    root = Path(tmp) / "root"
                    root.mkdir()
                    _assemble(kernel, debs, root, modules, init)
                    _cpio(root, out)
    return Ramdisk(kernel=kernel.vmlinuz, initrd=out, kernel_sha256=sha256_file(kernel.vmlinuz), initrd_sha256=sha256_file(out), key=key)


def export(ramdisk: Ramdisk, out_dir: Path) -> Ramdisk:
    """Copy the kernel and initrd to `out_dir` (vmlinuz, deploy-initrd.img) for an agent's asset folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kernel, initrd = out_dir / "vmlinuz", out_dir / "deploy-initrd.img"
    for src, dst in ((ramdisk.kernel, kernel), (ramdisk.initrd, initrd)):
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    return Ramdisk(kernel=kernel, initrd=initrd, kernel_sha256=ramdisk.kernel_sha256, initrd_sha256=ramdisk.initrd_sha256, key=ramdisk.key)
