"""Simulated Tx/Rx firmware, seats, video walls and the lab that runs a whole control room."""
