"""``python -m dit_demo.sweep`` (or ``accelerate launch ... -m dit_demo.sweep``): see dit_demo.lab.sweep."""

from dit_demo.lab.sweep_cli import main

if __name__ == "__main__":
    main()
