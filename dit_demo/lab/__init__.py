"""What the tool does with the runtime, one subpackage a concern: specs, outputs, sweep, quality, compare, bench,
interchange (each imports only the ones before it)."""
