"""The virtual lab: network namespaces, a Debian kernel, a busybox initramfs and QEMU hosts.

Used by the end-to-end tests, the netboot benchmark and `vaquero lab`; nothing here is test-only.
"""

from .initramfs import build_initramfs
from .kernel import Kernel, fetch_kernel
from .netns import LabNetwork
from .qemu import Vm

__all__ = ["Kernel", "LabNetwork", "Vm", "build_initramfs", "fetch_kernel"]
