"""``python -m lumos.synthetic``: generate problems, or sort an evaluation's failures by kind (see the package)."""

from lumos.synthetic import main

raise SystemExit(main())
