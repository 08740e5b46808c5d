"""Sweeps: many samples a cell over samplers x steps x cfg, sharded and resumable, on accelerate."""
