from synknow.cli import main

raise SystemExit(main())
