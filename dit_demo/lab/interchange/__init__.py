"""Checkpoints of the original DiT and SiT code: read, checked, mapped to diffusers' layout and back."""
