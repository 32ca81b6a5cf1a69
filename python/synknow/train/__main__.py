"""``python -m synknow.train ...`` (what ``torchrun --nproc_per_node=K -m synknow.train`` runs):
the same arguments as ``synknow train``."""

import sys

from synknow.commands.train import main

sys.exit(main())
