"""``python -m dit_demo.evaluate``: kept where the README names it; see dit_demo.cli.evaluate."""

from dit_demo.cli.evaluate import main

if __name__ == "__main__":
    main()
