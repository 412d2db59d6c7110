"""Image deploy: the deploy ramdisk that writes a profile's raw disk image onto a host's disk.

ramdisk.py      builds it (Debian kernel + busybox + sfdisk + e2fsprogs), cached by content hash
init_script.py  its /init: fetch instructions, stream and verify the image, grow, seed, call back

The instructions it reads are rendered by vaquero.render.deploy and served by the agent
(GET /v1/boot/deploy/<host>); docs/install.md "Image deploy" tells the whole story.
"""
