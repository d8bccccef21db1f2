"""`python -m keras_convit.train`: the main job, the same as `keras-convit train`."""

import sys

from keras_convit.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
