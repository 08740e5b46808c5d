"""``python -m dit_demo.sweep`` (or ``accelerate launch ... -m dit_demo.sweep``): see dit_demo.cli.sweep;
``python -m dit_demo.sweep annotate|ship ...``: see dit_demo.lab.quality.annotate."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] in (["annotate"], ["ship"]):
        from dit_demo.lab.quality.annotate import main

        main(sys.argv[1:])
    else:
        from dit_demo.cli.sweep import main

        main()
