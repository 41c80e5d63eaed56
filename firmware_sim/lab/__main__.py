"""`python -m firmware_sim.lab` is `kvm-lab`."""

import sys

from firmware_sim.lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
