"""``python -m runai_model_streamer``: the same as the ``runai-model-streamer`` command."""

from runai_model_streamer.cli import main

raise SystemExit(main())
