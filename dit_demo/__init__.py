"""DiT Sampler Lab: a class-conditional DiT and its VAE behind a registry of samplers, as a library, a command
line and a web app."""
