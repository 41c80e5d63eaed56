"""The lab: one command brings up a whole simulated control room (see docs/LAB.md).

`kvm-lab up` runs the management server, the simulator and the controllers as real
processes; the other `kvm-lab` commands and the `Lab` class drive a running lab.
"""

from firmware_sim.lab.cli import main
from firmware_sim.lab.client import Lab, LabError
from firmware_sim.lab.statefile import LabNotRunning

__all__ = ["Lab", "LabError", "LabNotRunning", "main"]
