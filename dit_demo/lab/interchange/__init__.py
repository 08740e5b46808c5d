"""Checkpoints of the original DiT code: read, checked, mapped to diffusers' layout and back."""
