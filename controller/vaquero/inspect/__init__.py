"""Machines the SoT does not know yet: what an inspection ramdisk reports about one (``report``)
and where the controller keeps those reports until a person enrolls the machine by pull request
(``records``). A report is hearsay from the provisioning network: it is typed and bounded here,
and it never installs anything by itself."""

from .records import INSPECTIONS, forget_inspection, inspection_key, list_inspections, pull_closed, record_inspection
from .report import MAX_REPORT_BYTES, InspectionReport, ReportDisk, ReportNic

__all__ = [
    "INSPECTIONS",
    "MAX_REPORT_BYTES",
    "InspectionReport",
    "ReportDisk",
    "ReportNic",
    "forget_inspection",
    "inspection_key",
    "list_inspections",
    "pull_closed",
    "record_inspection",
]
