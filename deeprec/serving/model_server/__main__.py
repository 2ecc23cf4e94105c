"""`python -m deeprec.serving.model_server` is `deeprec-model-server`."""

import sys

from deeprec.serving.model_server.main import main

sys.exit(main())
