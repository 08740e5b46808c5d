"""``python -m dit_demo``: the command line (dit_demo.cli.main)."""

from dit_demo.cli.main import main

if __name__ == "__main__":
    main()
