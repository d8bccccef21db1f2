"""`python -m keras_convit COMMAND ...`, the same as `keras-convit COMMAND ...`."""

import sys

from keras_convit.cli import main

sys.exit(main())
