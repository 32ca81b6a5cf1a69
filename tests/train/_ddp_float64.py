"""``torchrun`` entry point of the DDP test: ``python -m synknow.train`` in float64.

float64 as the default dtype makes every parameter, activation and gradient float64, so the
only difference between one process and two (the order in which per-token gradient terms are
added) is rounded at 2^-53 instead of 2^-24; see ``test_ddp.py`` for why that matters.
"""

import sys

import torch
from synknow.commands.train import main

torch.set_default_dtype(torch.float64)
sys.exit(main(sys.argv[1:]))
