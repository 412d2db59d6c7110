"""Bootable OS disk images for image-based deploys: `vaquero image build debian-12`.

recipes (what goes in) -> rootfs (mmdebstrap from the host's apt lists) -> guest (the files that
make it a deployable OS) -> gpt + grub (the disk, bootable under BIOS and UEFI, no mounts) -> build
(cache key, lock, manifest, gzip copy). docs/install.md, "Building images", is the contract.
"""
