"""``python -m dit_demo.train``: kept where the README and the model card name it; see dit_demo.training.train."""

from dit_demo.training.train import main

if __name__ == "__main__":
    main()
