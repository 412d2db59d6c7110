"""vaquero.drift: what the hardware is, compared with what the applied SoT revision wants.

The leader's :class:`~vaquero.drift.observer.DriftObserver` reads every managed host's BMC (power
state and boot override) on a schedule, through the BMC guard, and writes one record per host at
``/drift/<host>`` (:mod:`vaquero.drift.records`); :mod:`vaquero.drift.compare` says, from the
host's lifecycle state and its SoT entry, what differs and why. The API, the metrics and
``vaquero plan --live`` only read those records.
"""
